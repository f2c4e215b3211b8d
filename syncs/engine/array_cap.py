"""Invariant 9 in docs/architecture.md at run time: no add pushes a member's array past its cap.

A partner that keeps memberships in one capped array attribute per connection
(Partner.shared_array: Braze in array mode) drops a profile's oldest values past the cap. The
services refuse a sync that would make more cohorts share the attribute than the cap
(syncs/array_cap.py), but a cap lowered afterwards, or syncs made before that rule, can still
take a member past it. So before a batch of adds is sent, the engine counts from the ledgers of
the other syncs writing the same array how many other cohorts' names each member's profile
holds there, and fails the members whose add would overflow it: what is already in the array
stays, and the run says why.

What it costs: one query when a run of a sync writing a shared array starts; none after when no
more cohorts share the array than its cap (no member can overflow it then); otherwise one query
per batch of adds.

What it cannot see: values other tools write to the same attribute, and the adds of another
sync's run that are in flight (sent, not yet checkpointed) at the same moment; two such runs
racing for a member's last free place can both take it.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.db.models import Count, Q

from connections.partners.base import Partner, Recipient, SharedArray
from syncs.engine.diff import PlannedMember
from syncs.models import Sync, SyncedMember


class SharingSync(NamedTuple):
    sync_id: int
    cohort_id: int
    # The value the sync adds to the array.
    cohort_name: str


def sharing_syncs(
    *,
    connection_id: int,
    partner: type[Partner],
    config: Any,
    shared: SharedArray,
    exclude_sync_id: int | None = None,
) -> list[SharingSync]:
    """The connection's syncs that write to the array `shared`: one query. Trait syncs write
    no membership, so never to the array."""
    syncs = Sync.objects.filter(connection_id=connection_id, kind=Sync.Kind.MEMBERSHIP)
    if exclude_sync_id is not None:
        syncs = syncs.exclude(pk=exclude_sync_id)
    rows = syncs.values_list("pk", "cohort_id", "cohort__name", "options")
    return [
        SharingSync(sync_id, cohort_id, name)
        for sync_id, cohort_id, name, options in rows
        if partner.shared_array(config, options) == shared
    ]


def overflow_reason(shared: SharedArray) -> str:
    return (
        f"array cap: {shared.attribute} already holds {shared.cap} cohorts for this member; "
        "use boolean membership for this sync or raise the connection's array cap"
    )


@dataclass(frozen=True)
class ArrayCapGuard:
    """The check a run of one sync makes before each batch of adds."""

    shared: SharedArray
    # The other syncs writing to the array whose cohort has another name.
    other_sync_ids: tuple[int, ...]
    # This sync and those of cohorts with its name: a profile they sent it to holds the value
    # already, and adding a value the array holds moves it to the end, taking no room (a full
    # resync sends such members again).
    own_sync_ids: tuple[int, ...]

    @classmethod
    def of(
        cls, *, sync: Sync, partner: type[Partner], config: Any, options: Mapping[str, Any]
    ) -> "ArrayCapGuard | None":
        """The guard for a run of `sync`, or None when none of its adds can overflow an array."""
        shared = partner.shared_array(config, options)
        if shared is None:
            return None
        others = sharing_syncs(
            connection_id=sync.connection_id,
            partner=partner,
            config=config,
            shared=shared,
            exclude_sync_id=sync.pk,
        )
        own = sync.cohort.name
        names = {other.cohort_name for other in others} - {own}
        if len(names) < shared.cap:
            return None  # even a member of every one of them fits, with this cohort too
        return cls(
            shared=shared,
            other_sync_ids=tuple(other.sync_id for other in others if other.cohort_name != own),
            own_sync_ids=(sync.pk, *(o.sync_id for o in others if o.cohort_name == own)),
        )

    def overflowing(self, sending: Sequence[tuple[PlannedMember, Recipient]]) -> dict[int, str]:
        """The refs of the members (with the profile they are sent to) whose add would overflow
        the array, with the reason: one query.

        A profile is matched by the identity it was sent as (the ledger's dest_* columns). The
        query finds the other syncs' rows through the ledger's index on the member's value,
        asking for rows whose member value is this member's or the identifier it is sent by;
        so a profile another cohort knows by a different identity, and sent by an extra
        identifier such as braze_id, is not counted.
        """
        if not sending:
            return {}
        by_profile: dict[tuple[str, str, str], list[int]] = {}
        for _member, recipient in sending:
            key = (recipient.identifier_type, recipient.alias_label, recipient.identifier)
            by_profile.setdefault(key, []).append(recipient.ref)
        values = {member.value for member, _ in sending} | {key[2] for key in by_profile}
        ours = Q(sync_id__in=self.own_sync_ids)
        full = (
            SyncedMember.objects.filter(
                sync_id__in=self.other_sync_ids + self.own_sync_ids,
                value__in=values,
                dest_value__in={key[2] for key in by_profile},
            )
            .values_list("dest_type", "dest_label", "dest_value")
            .annotate(
                held=Count("sync__cohort__name", distinct=True, filter=~ours),
                has_ours=Count("pk", filter=ours),
            )
            .filter(held__gte=self.shared.cap, has_ours=0)
        )
        reason = overflow_reason(self.shared)
        return {
            ref: reason
            for dest_type, dest_label, dest_value, _held, _ours in full
            for ref in by_profile.get((dest_type, dest_label, dest_value), [])
        }

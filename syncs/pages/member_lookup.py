"""Where one member stands: the cohorts it is in, and for each sync whether the destination has
it (added when, by which run, sent as which identifier), had it removed, failed or skipped it,
or has not been sent it yet. Also the syncs that still know the member from their ledger,
removals or errors though it has left their cohort.

Every lookup is an exact match on an indexed column (member value and extra identifiers, ledger,
trait ledger and removal values, error member text), and the whole answer costs six queries.
For a trait sync, "in the destination" means the member's attributes were written.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import F, Max, Q

from cohorts.models import EXTRA_IDENTIFIERS, CohortMember
from syncs.engine.diff import PRIMARY_TYPES, identity_text
from syncs.engine.errors import outcome_of
from syncs.models import Sync, SyncedMember, SyncedTraits, SyncRemoval, SyncRunError

# A member in more cohorts than this is shown in the first ones only.
MEMBERSHIPS_SHOWN = 100
# Identities are (id_type, alias_label, value), as in the cohort and the ledger.
Identity = tuple[str, str, str]


@dataclass(frozen=True)
class InDestination:
    added_at: datetime
    run_id: int | None
    sent_as: str
    # False when the partner may have ignored the add (a Braze profile that did not exist).
    applied: bool = True


@dataclass(frozen=True)
class Removal:
    removed_at: datetime
    run_id: int | None


@dataclass(frozen=True)
class Failure:
    at: datetime
    run_id: int
    operation: str
    reason: str
    partner_status: int | None

    @property
    def outcome(self) -> str:
        return outcome_of(self.reason)


@dataclass
class SyncState:
    sync: Sync
    identity: str
    in_destination: InDestination | None = None
    removal: Removal | None = None
    failure: Failure | None = None

    @property
    def state(self) -> str:
        """The latest thing that happened: in_destination, removed, failed, skipped or
        not_sent."""
        happened: list[tuple[datetime, str]] = []
        if self.in_destination:
            happened.append((self.in_destination.added_at, "in_destination"))
        if self.removal:
            happened.append((self.removal.removed_at, "removed"))
        if self.failure:
            happened.append((self.failure.at, self.failure.outcome))
        return max(happened)[1] if happened else "not_sent"


@dataclass
class Membership:
    member: CohortMember
    identity: str
    syncs: list[SyncState] = field(default_factory=list)


@dataclass(frozen=True)
class LookupResult:
    memberships: list[Membership]
    # Syncs that know the member (ledger, removals, errors) though it is not in their cohort.
    former: list[SyncState]
    truncated: bool


def _identity(row: CohortMember | SyncedMember | SyncedTraits | SyncRemoval) -> Identity:
    return (row.id_type, row.alias_label, row.value)


def _matching_members(value: str, id_type: str | None) -> list[CohortMember]:
    if id_type in PRIMARY_TYPES:
        match = Q(id_type=id_type, value=value)
    elif id_type in EXTRA_IDENTIFIERS:
        match = Q(**{id_type: value})
    else:
        match = Q(value=value)
        for name in EXTRA_IDENTIFIERS:
            match |= Q(**{name: value})
    members = CohortMember.objects.filter(match).select_related("cohort")
    return list(members.order_by("cohort__name", "cohort_id", "id")[: MEMBERSHIPS_SHOWN + 1])


def _wanted(identities: set[Identity], value: str, id_type: str | None) -> Q:
    """Ledger or removal rows of these identities, or of any primary identity with `value`
    (a member that left every cohort is found by its primary identifier only)."""
    wanted = Q(pk__in=[])
    for id_type_, label, value_ in identities:
        wanted |= Q(id_type=id_type_, alias_label=label, value=value_)
    if id_type is None or id_type in PRIMARY_TYPES:
        wanted |= Q(value=value, **({"id_type": id_type} if id_type else {}))
    return wanted


def look_up_member(value: str, id_type: str | None = None) -> LookupResult:
    """`id_type` narrows the search to one primary type or one extra identifier column."""
    members = _matching_members(value, id_type)
    truncated = len(members) > MEMBERSHIPS_SHOWN
    members = members[:MEMBERSHIPS_SHOWN]
    identities = {_identity(member) for member in members}
    # Every lookup below filters on an indexed value first (ledger, removals: value).
    values = {identity[2] for identity in identities} | {value}
    wanted = _wanted(identities, value, id_type)
    ledger = list(
        SyncedMember.objects.filter(wanted, value__in=values).annotate(
            # Whether the run that sent it knows the partner applied it (not Braze's
            # update-existing-only, which skips unknown profiles): the same query, joined.
            run_applied=F("run__adds_applied")
        )[:1000]
    )
    identities |= {_identity(row) for row in ledger}
    # Trait syncs: the members whose attributes they wrote (through the (sync, value) index).
    traits = list(SyncedTraits.objects.filter(wanted, value__in=values)[:1000])
    identities |= {_identity(row) for row in traits}
    latest_removals = (
        SyncRemoval.objects.filter(wanted, value__in=values)
        .values("sync_id", "id_type", "alias_label", "value")
        .annotate(latest=Max("id"))
        .values("latest")
    )
    removals = list(SyncRemoval.objects.filter(id__in=latest_removals[:1000]))
    identities |= {_identity(row) for row in removals}
    texts = {identity_text(*identity) for identity in identities}
    if id_type is None or id_type in PRIMARY_TYPES:
        # Failed or skipped only, and in no cohort now: found by its primary identifier.
        texts |= {identity_text(t, "", value) for t in PRIMARY_TYPES - {"user_alias"}}
    latest_errors = (
        SyncRunError.objects.filter(member__in=texts)
        .values("run__sync_id", "member")
        .annotate(latest=Max("id"))
        .values("latest")
    )
    errors = list(
        SyncRunError.objects.filter(id__in=latest_errors[:1000]).values_list(
            "run__sync_id",
            "member",
            "created_at",
            "run_id",
            "operation",
            "reason",
            "partner_status",
        )
    )
    known_sync_ids = {row.sync_id for row in ledger} | {row.sync_id for row in removals}
    known_sync_ids |= {row.sync_id for row in traits}
    known_sync_ids |= {row[0] for row in errors}
    cohort_ids = {member.cohort_id for member in members}
    syncs = list(
        Sync.objects.filter(Q(cohort_id__in=cohort_ids) | Q(pk__in=known_sync_ids))
        .select_related("connection")
        .order_by("name", "id")
    )
    states: dict[tuple[int, str], SyncState] = {}

    def state_of(sync: Sync, text: str) -> SyncState:
        return states.setdefault((sync.pk, text), SyncState(sync, text))

    by_id = {sync.pk: sync for sync in syncs}
    for row in ledger:
        sent_as = identity_text(row.dest_type, row.dest_label, row.dest_value)
        state_of(by_id[row.sync_id], identity_text(*_identity(row))).in_destination = InDestination(
            row.added_at, row.run_id, sent_as, applied=row.run_applied is not False
        )
    for written in traits:
        sent_as = identity_text(written.dest_type, "", written.dest_value)
        state_of(
            by_id[written.sync_id], identity_text(*_identity(written))
        ).in_destination = InDestination(written.updated_at, written.run_id, sent_as)
    for removal in removals:
        state_of(by_id[removal.sync_id], identity_text(*_identity(removal))).removal = Removal(
            removal.removed_at, removal.run_id
        )
    for sync_id, text, at, run_id, operation, reason, status in errors:
        state_of(by_id[sync_id], text).failure = Failure(at, run_id, operation, reason, status)
    memberships = []
    for member in members:
        text = identity_text(*_identity(member))
        in_cohort = [sync for sync in syncs if sync.cohort_id == member.cohort_id]
        memberships.append(Membership(member, text, [state_of(sync, text) for sync in in_cohort]))
    shown = {(state.sync.pk, state.identity) for m in memberships for state in m.syncs}
    former = [state for key, state in states.items() if key not in shown]
    former.sort(key=lambda state: (state.sync.name, state.sync.pk, state.identity))
    return LookupResult(memberships, former, truncated)

"""A partner that keeps memberships in one capped array attribute per connection (Braze, in
array mode: connections/partners/braze/array_cap.py) drops the oldest values of a profile past
the connection's cap. So a sync that would make more cohorts write their names into the
attribute than the cap is refused (create_sync and update_sync call `refuse_array_overflow`, so
the wizard, the edit form and the API alike), and the sync form's preview says so before the
marketer saves, with the number of members already in more of those cohorts than the cap.

A sync that shared the array before (made before this rule, or whose connection's cap was
lowered since) may still be edited: the engine fails the adds that would overflow at run time
(syncs/engine/array_cap.py), and the preview says so.
"""

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count

from cohorts.models import Cohort, CohortMember
from connections.models import Connection
from connections.partners.base import SharedArray
from syncs.engine.array_cap import sharing_syncs


@dataclass(frozen=True)
class ArraySharing:
    """The cohorts that would write their names into a capped array attribute."""

    connection: str
    attribute: str
    cap: int
    # Distinct cohort names written to the attribute (the array's values), this sync's included.
    cohorts: int
    cohort_ids: frozenset[int]

    @property
    def over(self) -> bool:
        return self.cohorts > self.cap

    def refusal(self) -> str:
        return (
            f"{self.connection} keeps at most {self.cap} values in the array attribute "
            f"{self.attribute}, and {self.cohorts - 1} cohorts write their names there already: "
            f"this sync would make {self.cohorts}, and a member in more than {self.cap} of them "
            "would lose the oldest. Use boolean membership for this sync (membership mode "
            '"boolean"), sync to a connection that writes another array attribute, or raise the '
            "connection's array cap if the workspace's cap was raised."
        )


def array_sharing(
    *,
    connection: Connection,
    cohort: Cohort,
    options: dict[str, Any],
    exclude_sync_id: int | None = None,
) -> ArraySharing | None:
    """Who shares the array a sync of `cohort` on `connection` with `options` writes to, or
    None when it writes to none: one query."""
    partner, config = connection.partner, connection.get_config()
    shared = partner.shared_array(config, options)
    if shared is None:
        return None
    others = sharing_syncs(
        connection_id=connection.pk,
        partner=partner,
        config=config,
        shared=shared,
        exclude_sync_id=exclude_sync_id,
    )
    names = {other.cohort_name for other in others} | {cohort.name}
    return ArraySharing(
        connection=connection.name,
        attribute=shared.attribute,
        cap=shared.cap,
        cohorts=len(names),
        cohort_ids=frozenset({other.cohort_id for other in others} | {cohort.pk}),
    )


def _newly_shared(
    connection: Connection, options: dict[str, Any], current: dict[str, Any] | None
) -> SharedArray | None:
    """The array the sync would write to and did not before (None: it writes none, or the same
    one as now)."""
    partner, config = connection.partner, connection.get_config()
    shared = partner.shared_array(config, options)
    if current is not None and shared == partner.shared_array(config, current):
        return None
    return shared


def refuse_array_overflow(
    *,
    connection: Connection,
    cohort: Cohort,
    options: dict[str, Any],
    current: dict[str, Any] | None = None,
    sync_id: int | None = None,
) -> None:
    """Raise ValidationError (on `options`) when the sync would make more cohorts share its
    array than the cap. `current`: the options of the sync being edited (None for a new one);
    an edit that keeps writing the same array is let through (the engine guards its runs).

    Called inside the transaction that saves the sync: it holds the connection's row until
    then, so two syncs saved at once cannot both pass the count."""
    if _newly_shared(connection, options, current) is None:
        return
    list(Connection.objects.select_for_update().filter(pk=connection.pk).values_list("pk"))
    sharing = array_sharing(
        connection=connection, cohort=cohort, options=options, exclude_sync_id=sync_id
    )
    if sharing is not None and sharing.over:
        raise ValidationError({"options": sharing.refusal()})


@dataclass(frozen=True)
class ArrayCapWarning:
    """What the sync form's preview says about the array: the sync is refused, or (a sync that
    shared it already) its runs fail the members whose array is full."""

    sharing: ArraySharing
    refused: bool
    # Members (by their cohort identity) who are in more than `cap` of those cohorts today.
    members_over: int

    @property
    def attribute(self) -> str:
        return self.sharing.attribute

    @property
    def cohorts(self) -> int:
        return self.sharing.cohorts

    @property
    def cap(self) -> int:
        return self.sharing.cap


def array_cap_warning(
    *,
    connection: Connection,
    cohort: Cohort,
    options: dict[str, Any],
    exclude_sync_id: int | None = None,
    current: dict[str, Any] | None = None,
) -> ArrayCapWarning | None:
    """The preview's warning for a sync of `cohort` on `connection` with `options` (`current`:
    the edited sync's options now), or None below the cap.

    Two queries at most, whatever the cohorts' sizes: the connection's syncs, then (only past
    the cap) one grouped count of the members in more of those cohorts than the cap.
    """
    sharing = array_sharing(
        connection=connection, cohort=cohort, options=options, exclude_sync_id=exclude_sync_id
    )
    if sharing is None or not sharing.over:
        return None
    over = (
        CohortMember.objects.filter(cohort_id__in=sharing.cohort_ids)
        .values("id_type", "alias_label", "value")
        .annotate(values=Count("cohort__name", distinct=True))
        .filter(values__gt=sharing.cap)
        .count()
    )
    refused = _newly_shared(connection, options, current) is not None
    return ArrayCapWarning(sharing=sharing, refused=refused, members_over=over)

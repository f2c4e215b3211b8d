"""Braze keeps at most 25 values in an array attribute by default (partner-apis.md §1: "array
length cap"), and a profile past it silently loses values. In array mode every sync of a
Braze connection adds its cohort's name to the same attribute, so when more than 25 cohorts
share it, a member of many of them can lose memberships. The sync form warns before that
happens, with the number of members already in more than 25 of those cohorts.
"""

from dataclasses import dataclass

from django.db.models import Count

from connections.models import Connection
from connections.partners.braze import BrazeConfig
from syncs.models import Cohort, CohortMember, Sync

BRAZE_ARRAY_CAP = 25
ARRAY_MODES = ("array", "both")


@dataclass(frozen=True)
class ArrayCapWarning:
    attribute: str
    # Distinct cohort names written to the attribute (the array's values), this sync's included.
    cohorts: int
    # Members (by their cohort identity) who are in more than `cap` of those cohorts today.
    members_over: int
    cap: int = BRAZE_ARRAY_CAP


def membership_mode(config: BrazeConfig, options: dict[str, object] | None) -> str:
    """The mode a sync writes in: its own override, else its connection's."""
    return str((options or {}).get("membership_mode") or config.membership_mode)


def array_cap_warning(
    *,
    connection: Connection,
    cohort: Cohort,
    options: dict[str, object],
    exclude_sync_id: int | None = None,
) -> ArrayCapWarning | None:
    """The warning for a sync of `cohort` on `connection` with `options`, or None.

    Two queries at most, whatever the cohorts' sizes: the connection's syncs, then (only past
    the cap) one grouped count of the members in more than 25 of their cohorts.
    """
    if connection.kind != Connection.Kind.BRAZE:
        return None
    config = connection.get_config()
    assert isinstance(config, BrazeConfig)
    if membership_mode(config, options) not in ARRAY_MODES:
        return None
    others = Sync.objects.filter(connection_id=connection.pk)
    if exclude_sync_id is not None:
        others = others.exclude(pk=exclude_sync_id)
    names, cohort_ids = {cohort.name}, {cohort.pk}
    for cohort_id, name, sync_options in others.values_list("cohort_id", "cohort__name", "options"):
        if membership_mode(config, sync_options) in ARRAY_MODES:
            names.add(name)
            cohort_ids.add(cohort_id)
    if len(names) <= BRAZE_ARRAY_CAP:
        return None
    over = (
        CohortMember.objects.filter(cohort_id__in=cohort_ids)
        .values("id_type", "alias_label", "value")
        .annotate(values=Count("cohort__name", distinct=True))
        .filter(values__gt=BRAZE_ARRAY_CAP)
        .count()
    )
    return ArrayCapWarning(attribute=config.array_attribute, cohorts=len(names), members_over=over)

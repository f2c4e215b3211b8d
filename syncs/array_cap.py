"""A partner that keeps memberships in one capped array attribute per connection (Braze, in
array mode: connections/partners/braze/array_cap.py) drops the oldest values of a profile past
the cap. The sync form warns before that happens, with the number of members already in more
cohorts than the cap among those that write to the attribute.
"""

from dataclasses import dataclass

from django.db.models import Count

from cohorts.models import Cohort, CohortMember
from connections.models import Connection
from syncs.models import Sync


@dataclass(frozen=True)
class ArrayCapWarning:
    attribute: str
    # Distinct cohort names written to the attribute (the array's values), this sync's included.
    cohorts: int
    # Members (by their cohort identity) who are in more than `cap` of those cohorts today.
    members_over: int
    cap: int


def array_cap_warning(
    *,
    connection: Connection,
    cohort: Cohort,
    options: dict[str, object],
    exclude_sync_id: int | None = None,
) -> ArrayCapWarning | None:
    """The warning for a sync of `cohort` on `connection` with `options`, or None.

    Two queries at most, whatever the cohorts' sizes: the connection's syncs, then (only past
    the cap) one grouped count of the members in more of their cohorts than the cap.
    """
    partner, config = connection.partner, connection.get_config()
    shared = partner.shared_array(config, options)
    if shared is None:
        return None
    others = Sync.objects.filter(connection_id=connection.pk)
    if exclude_sync_id is not None:
        others = others.exclude(pk=exclude_sync_id)
    names, cohort_ids = {cohort.name}, {cohort.pk}
    for cohort_id, name, sync_options in others.values_list("cohort_id", "cohort__name", "options"):
        if partner.shared_array(config, sync_options) == shared:
            names.add(name)
            cohort_ids.add(cohort_id)
    if len(names) <= shared.cap:
        return None
    over = (
        CohortMember.objects.filter(cohort_id__in=cohort_ids)
        .values("id_type", "alias_label", "value")
        .annotate(values=Count("cohort__name", distinct=True))
        .filter(values__gt=shared.cap)
        .count()
    )
    return ArrayCapWarning(
        attribute=shared.attribute, cohorts=len(names), members_over=over, cap=shared.cap
    )

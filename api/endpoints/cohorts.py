"""Cohorts, read-only: every role reads them."""

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router

from api.access import get_or_404
from api.auth import TokenAuth
from api.pagination import PageQuery, page_of
from api.schemas import CohortOut, Id, Page
from cohorts.models import Cohort

VIEW = "cohorts.view_cohort"

router = Router(tags=["cohorts"])


@router.get("/cohorts", response=Page[CohortOut], auth=TokenAuth(VIEW))
def list_cohorts(request: HttpRequest, page: Query[PageQuery]) -> dict[str, Any]:
    """Cohorts by name, with their member counts."""
    return page_of(Cohort.objects.all(), page)


@router.get("/cohorts/{cohort_id}", response=CohortOut, auth=TokenAuth(VIEW))
def get_cohort(request: HttpRequest, cohort_id: Id) -> Cohort:
    return get_or_404(Cohort.objects.all(), cohort_id, "cohort")

"""Every paged list answers 200 with a sentence saying it is empty, whether nothing exists yet
or a filter matches nothing; a page number past the end shows the last page (#15: an empty
page object was taken for an invalid filter and served with 400)."""

import pytest
from django.urls import reverse

from cohorts.models import Cohort
from syncs.models import SyncRun
from tests.factories import make_run, make_sync

pytestmark = pytest.mark.django_db


@pytest.fixture
def sync(cohort):
    return make_sync(cohort=cohort)


def test_a_sync_that_never_ran_says_so_with_200(marketer_client, sync):
    response = marketer_client.get(reverse("syncs:sync_detail", args=[sync.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "This sync has not run yet." in page
    assert "0 runs" in page


def test_a_history_filter_that_matches_nothing_says_so_with_200(viewer_client, sync):
    make_run(sync, status=SyncRun.Status.SUCCEEDED)
    url = reverse("syncs:sync_detail", args=[sync.pk])
    response = viewer_client.get(url, {"status": "failed", "trigger": "api"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "No run matches this filter." in page
    assert "0 runs matching" in page


@pytest.mark.parametrize(
    ("url", "query", "empty_text"),
    [
        ("home", {}, "Nothing to sync yet"),
        ("syncs:sync_list", {}, "No syncs yet."),
        ("cohorts:cohort_list", {}, "No cohorts yet."),
        ("cohorts:cohort_list", {"q": "nothing is called this"}, "No cohort name contains"),
        ("cohorts:import_requests", {}, "No import requests yet."),
        ("audit_log", {"actor": "nobody at all"}, "No entries match."),
    ],
)
def test_empty_lists_answer_200_with_their_empty_text(admin_client, url, query, empty_text):
    response = admin_client.get(reverse(url), query)
    assert response.status_code == 200
    assert empty_text in response.content.decode()


@pytest.mark.parametrize("number", ["999", "0", "-1"])
def test_a_page_past_the_end_shows_the_last_page(viewer_client, number):
    for n in range(51):  # two pages of 50
        Cohort.objects.create(name=f"Cohort {n:02d}", source=Cohort.Source.MANUAL)
    response = viewer_client.get(reverse("cohorts:cohort_list"), {"page": number})
    assert response.status_code == 200
    assert response.context["page"].number == 2
    assert "Page 2 of 2" in response.content.decode()


def test_a_past_the_end_page_of_an_empty_history_is_the_empty_first_page(viewer_client, sync):
    url = reverse("syncs:sync_detail", args=[sync.pk])
    response = viewer_client.get(url, {"page": "7"})
    assert response.status_code == 200
    assert "This sync has not run yet." in response.content.decode()

"""The source's cohorts page: the list read by a worker, a Pull for marketers and admins, the
month's downloads used and projected, and a cadence past the quota refused with nothing saved."""

import json

import pytest
from django.urls import reverse

from cohorts.models import AmplitudeCohortListing, AmplitudePull
from cohorts.pulls import run as pull_run
from connections.sandbox import DEMO_AMPLITUDE_API_KEY, DEMO_AMPLITUDE_SECRET_KEY
from tests.factories import make_connection
from tests.jobs import run_jobs

pytestmark = pytest.mark.django_db


def make_source(sandbox):
    secret = json.dumps(
        {"api_key": DEMO_AMPLITUDE_API_KEY, "secret_key": DEMO_AMPLITUDE_SECRET_KEY}
    )
    return make_connection("amplitude", name="Amplitude", endpoint=sandbox.url, secret=secret)


def page(client, source):
    return client.get(reverse("cohorts:source_cohorts", args=[source.pk]))


def listed(source, *cohorts):
    AmplitudeCohortListing.objects.create(
        connection=source,
        cohorts=[{"id": i, "name": n, "size": 10} for i, n in cohorts],
        listed_at="2026-12-01T00:00:00Z",
    )


def test_the_page_requires_login_and_a_role(client, outsider_client, sandbox):
    source = make_source(sandbox)
    response = page(client, source)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert page(outsider_client, source).status_code == 404


def test_a_viewer_reads_but_cannot_pull(viewer_client, sandbox):
    source = make_source(sandbox)
    listed(source, ("c1", "Power users"))
    html = page(viewer_client, source).content.decode()
    assert "Power users" in html and 'name="amplitude_cohort_id"' not in html
    response = viewer_client.post(
        reverse("cohorts:pull_create", args=[source.pk]),
        {"amplitude_cohort_id": "c1", "cadence": "daily"},
    )
    assert response.status_code == 403
    assert not AmplitudePull.objects.exists()


def test_a_destination_has_no_such_page(admin_client):
    assert page(admin_client, make_connection()).status_code == 404


@pytest.mark.usefixtures("rq_redis")
def test_a_marketer_reads_the_list_and_pulls_a_cohort(marketer_client, sandbox):
    sandbox.state.seed_amplitude_cohort("c1", "Power users", [{"user_id": "u1"}])
    sandbox.state.seed_amplitude_cohort("c2", "Churn risk", [{"user_id": "u2"}])
    source = make_source(sandbox)
    marketer_client.post(reverse("cohorts:refresh_listing", args=[source.pk]))
    run_jobs("default")
    html = page(marketer_client, source).content.decode()
    assert "Power users" in html and "Churn risk" in html
    response = marketer_client.post(
        reverse("cohorts:pull_create", args=[source.pk]),
        {"amplitude_cohort_id": "c1", "cadence": "daily"},
        follow=True,
    )
    html = response.content.decode()
    assert "Power users is pulled daily" in html
    pull = AmplitudePull.objects.get()
    assert (pull.amplitude_cohort_id, pull.cadence, pull.cohort.name) == (
        "c1",
        "daily",
        "Power users",
    )
    assert '<dd id="downloads-projected">30 of 500</dd>' in html
    assert '<dd id="downloads-used">0 of 500</dd>' in html
    pull_run.run_pull(pull.pk, sleep=lambda s: None)
    html = page(marketer_client, source).content.decode()
    assert '<dd id="downloads-used">1 of 500</dd>' in html
    assert "Up to date" in html


def test_an_hourly_pull_is_refused_on_the_page_and_nothing_is_saved(marketer_client, sandbox):
    source = make_source(sandbox)
    listed(source, ("c1", "Power users"))
    response = marketer_client.post(
        reverse("cohorts:pull_create", args=[source.pk]),
        {"amplitude_cohort_id": "c1", "cadence": "hourly"},
        follow=True,
    )
    assert "past Amplitude&#x27;s quota of 500 a month" in response.content.decode()
    assert not AmplitudePull.objects.exists()


def test_a_cohort_not_in_the_list_is_refused(marketer_client, sandbox):
    source = make_source(sandbox)
    listed(source, ("c1", "Power users"))
    response = marketer_client.post(
        reverse("cohorts:pull_create", args=[source.pk]),
        {"amplitude_cohort_id": "made-up", "cadence": "once"},
        follow=True,
    )
    assert "Choose a cohort from the source" in response.content.decode()
    assert not AmplitudePull.objects.exists()


def test_a_failed_pull_shows_its_error(admin_client, sandbox):
    sandbox.state.seed_amplitude_cohort("c1", "Power users", [{"user_id": "u1"}])
    sandbox.state.configure_amplitude(fail_jobs=1)
    source = make_source(sandbox)
    listed(source, ("c1", "Power users"))
    admin_client.post(
        reverse("cohorts:pull_create", args=[source.pk]),
        {"amplitude_cohort_id": "c1", "cadence": "once"},
    )
    pull_run.run_pull(AmplitudePull.objects.get().pk, sleep=lambda s: None)
    html = page(admin_client, source).content.decode()
    assert "Amplitude&#x27;s export failed" in html
    assert "The cohort keeps its last good members." in html


def test_the_connection_page_links_a_source_to_its_cohorts(admin_client, sandbox):
    source = make_source(sandbox)
    html = admin_client.get(reverse("connections:detail", args=[source.pk])).content.decode()
    assert reverse("cohorts:source_cohorts", args=[source.pk]) in html
    braze = make_connection()
    html = admin_client.get(reverse("connections:detail", args=[braze.pk])).content.decode()
    assert "/cohorts/sources/" not in html


def test_a_marketer_stops_a_pull_and_the_cohort_keeps_its_members(marketer_client, sandbox):
    sandbox.state.seed_amplitude_cohort("c1", "Power users", [{"user_id": "u1"}])
    source = make_source(sandbox)
    listed(source, ("c1", "Power users"))
    marketer_client.post(
        reverse("cohorts:pull_create", args=[source.pk]),
        {"amplitude_cohort_id": "c1", "cadence": "once"},
    )
    pull = pull_run.run_pull(AmplitudePull.objects.get().pk, sleep=lambda s: None)
    marketer_client.post(reverse("cohorts:pull_stop", args=[pull.pk]))
    assert not AmplitudePull.objects.exists()
    assert pull.cohort.members.count() == 1


@pytest.mark.usefixtures("rq_redis")
def test_refused_keys_are_shown_on_the_list_and_the_source_needs_attention(admin_client, sandbox):
    from connections.models import Connection

    sandbox.state.amplitude_keys.clear()
    source = make_source(sandbox)
    admin_client.post(reverse("cohorts:refresh_listing", args=[source.pk]))
    run_jobs("default")
    html = page(admin_client, source).content.decode()
    assert "Invalid API key or secret key" in html
    assert DEMO_AMPLITUDE_SECRET_KEY not in html
    source.refresh_from_db()
    assert source.state == Connection.State.NEEDS_ATTENTION

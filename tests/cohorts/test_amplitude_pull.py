"""Pulling an Amplitude cohort (the Behavioral Cohorts download) against the simulator over
real HTTP: the export polled, the file inline or behind a storage link (expired and asked for
again), the members replaced in one transaction, a failed or timed-out export recorded while the
cohort keeps its last good members, a bad file changing nothing, and the monthly quota."""

import json
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from cohorts.models import AmplitudeDownloadRequest, AmplitudePull, Cohort, ImportRequest
from cohorts.pulls import run as pull_run
from cohorts.pulls.dispatch import dispatch_due_pulls
from cohorts.pulls.parse import BadFile, FileCounts, read_members
from cohorts.pulls.quota import usage
from cohorts.pulls.services import change_cadence, create_pull
from connections.partners.amplitude import simulator
from connections.sandbox import DEMO_AMPLITUDE_API_KEY, DEMO_AMPLITUDE_SECRET_KEY
from core.models import AuditEntry
from tests.factories import make_connection
from tests.jobs import run_jobs

pytestmark = pytest.mark.django_db

AMP_ID = "7khm89cz"


def make_source(sandbox, name="Amplitude"):
    secret = json.dumps(
        {"api_key": DEMO_AMPLITUDE_API_KEY, "secret_key": DEMO_AMPLITUDE_SECRET_KEY}
    )
    return make_connection("amplitude", name=name, endpoint=sandbox.url, secret=secret)


def seed(sandbox, user_ids, cohort_id=AMP_ID, **extra):
    members = [{"user_id": u, "amplitude_id": 5000 + n, **extra} for n, u in enumerate(user_ids)]
    sandbox.state.seed_amplitude_cohort(cohort_id, "Power users", members)


def members_of(cohort):
    return set(cohort.members.values_list("value", flat=True))


def pull_once(sandbox, cadence="daily"):
    return create_pull(
        connection=make_source(sandbox),
        amplitude_cohort_id=AMP_ID,
        name="Power users",
        cadence=cadence,
        actor=None,
    )


def run(pull, waits=None):
    return pull_run.run_pull(pull.pk, sleep=(waits.append if waits is not None else lambda s: None))


def expire_first_link(monkeypatch):
    first = simulator._file

    def answer(state, request_id, headers):
        response = first(state, request_id, headers)
        if len(state.amplitude_links) == 1:
            state.expire_amplitude_links()
        return response

    monkeypatch.setattr(simulator, "_file", answer)


# The download


def test_it_polls_the_export_then_replaces_the_members_with_the_inline_file(sandbox):
    fresh = [f"user-{n}" for n in range(3000)]
    seed(sandbox, fresh)
    sandbox.state.configure_amplitude(polls=2)
    pull = pull_once(sandbox)
    # Before: 100 members still in the cohort at Amplitude, 50 who left it.
    from cohorts.membership import Identity, apply_changes

    before = [Identity("external_id", f"user-{n}") for n in range(100)]
    gone = [Identity("external_id", f"left-{n}") for n in range(50)]
    apply_changes(pull.cohort_id, add=before + gone)
    waits = []
    pull = run(pull, waits)
    assert pull.status == AmplitudePull.Status.SUCCEEDED
    assert waits == [2.0, 4.0]
    cohort = Cohort.objects.get(pk=pull.cohort_id)
    assert members_of(cohort) == set(fresh)
    assert cohort.member_count == 3000
    logged = ImportRequest.objects.get(cohort=cohort, endpoint="download")
    assert (logged.status, logged.added, logged.removed, logged.ignored) == (
        "applied",
        2900,
        50,
        100,
    )
    assert pull.last_rows == 3000 and pull.last_skipped == 0 and pull.request_id == ""
    assert pull.next_run_at == pull.last_success_at + timedelta(days=1)
    stats = sandbox.state.stats()["requests"]
    request_id = AmplitudeDownloadRequest.objects.get().request_id
    assert stats[f"GET /api/5/cohorts/request/{request_id}/file"] == {"200": 1}


def test_a_large_file_is_followed_to_its_storage_link_without_the_credentials(sandbox):
    seed(sandbox, [f"user-{n}" for n in range(2000)])
    sandbox.state.configure_amplitude(inline_bytes=1000)
    pull = run(pull_once(sandbox))
    assert pull.status == AmplitudePull.Status.SUCCEEDED
    assert Cohort.objects.get(pk=pull.cohort_id).member_count == 2000
    request_id = AmplitudeDownloadRequest.objects.get().request_id
    assert sandbox.state.stats()["requests"][f"GET /api/5/cohorts/request/{request_id}/file"] == {
        "302": 1
    }
    assert sandbox.state.amplitude_usage()["storage_authorization_seen"] == 0


def test_an_expired_link_is_asked_for_again(sandbox, monkeypatch):
    seed(sandbox, [f"user-{n}" for n in range(2000)])
    sandbox.state.configure_amplitude(inline_bytes=1000)
    expire_first_link(monkeypatch)
    pull = run(pull_once(sandbox))
    assert pull.status == AmplitudePull.Status.SUCCEEDED
    assert Cohort.objects.get(pk=pull.cohort_id).member_count == 2000
    request_id = AmplitudeDownloadRequest.objects.get().request_id
    assert sandbox.state.stats()["requests"][f"GET /api/5/cohorts/request/{request_id}/file"] == {
        "302": 2
    }
    # Only step 1 counts against the quota: one download used.
    assert usage(pull.connection_id).used == 1


def test_rows_without_a_user_id_are_skipped_and_counted(sandbox):
    seed(sandbox, ["a", "", "b", "  ", "c"])
    pull = run(pull_once(sandbox))
    assert members_of(Cohort.objects.get(pk=pull.cohort_id)) == {"a", "b", "c"}
    assert (pull.last_rows, pull.last_skipped) == (5, 2)


# Failures: recorded and shown, retried later, the cohort keeps its members


def _good_first_pull(sandbox):
    seed(sandbox, ["keep-1", "keep-2"])
    pull = run(pull_once(sandbox))
    assert pull.status == AmplitudePull.Status.SUCCEEDED
    seed(sandbox, ["other-1"])
    AmplitudePull.objects.filter(pk=pull.pk).update(next_run_at=timezone.now())
    return pull


def test_a_failed_export_keeps_the_cohort_and_is_shown_and_retried(sandbox, admin_client):
    pull = _good_first_pull(sandbox)
    sandbox.state.configure_amplitude(fail_jobs=1)
    before = timezone.now()
    pull = run(pull)
    cohort = Cohort.objects.get(pk=pull.cohort_id)
    assert pull.status == AmplitudePull.Status.FAILED
    assert members_of(cohort) == {"keep-1", "keep-2"}
    assert "Amplitude's export failed" in pull.last_error
    # A failed job is requested again, after a backoff shorter than the cadence.
    assert pull.request_id == ""
    assert (
        before + timedelta(minutes=5) <= pull.next_run_at <= timezone.now() + timedelta(minutes=5)
    )
    logged = ImportRequest.objects.filter(cohort=cohort, endpoint="download").first()
    assert logged.status == "rejected" and "export failed" in logged.error
    html = admin_client.get(reverse("cohorts:cohort_detail", args=[cohort.pk])).content.decode()
    shown = html.split('id="cohort-pull"')[1].split("</dd>")[0]
    assert "Failed" in shown and "Amplitude&#x27;s export failed" in shown
    assert "The cohort keeps its last good members." in shown
    # The retry succeeds and replaces the members.
    assert run(pull).status == AmplitudePull.Status.SUCCEEDED
    assert members_of(cohort) == {"other-1"}


def test_a_timed_out_export_is_polled_again_without_spending_quota(sandbox, monkeypatch):
    pull = _good_first_pull(sandbox)
    monkeypatch.setattr(pull_run, "POLL_BUDGET_SECONDS", 10)
    sandbox.state.configure_amplitude(polls=100)
    pull = run(pull)
    assert pull.status == AmplitudePull.Status.FAILED
    assert "had not finished the export" in pull.last_error
    assert pull.request_id != ""
    assert members_of(pull.cohort) == {"keep-1", "keep-2"}
    sandbox.state.configure_amplitude(polls=0)
    sandbox.state.amplitude_exports[pull.request_id].polls_left = 0
    pull = run(pull)
    assert pull.status == AmplitudePull.Status.SUCCEEDED
    assert members_of(pull.cohort) == {"other-1"}
    assert AmplitudeDownloadRequest.objects.count() == 2  # the first pull's and this one


def test_a_file_without_a_user_id_column_changes_nothing(sandbox, monkeypatch):
    pull = _good_first_pull(sandbox)
    monkeypatch.setattr(simulator, "FIXED_COLUMNS", ("amplitude_id", "uid"))
    pull = run(pull)
    assert pull.status == AmplitudePull.Status.FAILED
    assert "no user_id column" in pull.last_error and "Nothing was applied" in pull.last_error
    assert members_of(pull.cohort) == {"keep-1", "keep-2"}


def test_a_file_broken_halfway_rolls_back_what_was_applied(sandbox, monkeypatch):
    """Atomic: the first chunks were written inside the transaction when the bad row came;
    the cohort is as before, count and all."""
    pull = _good_first_pull(sandbox)
    seed(sandbox, [f"new-{n}" for n in range(2500)] + ['bad"quote'])
    original = simulator._csv
    monkeypatch.setattr(simulator, "_csv", lambda state, export: original(state, export) + b'"x')
    pull = run(pull)
    assert pull.status == AmplitudePull.Status.FAILED
    assert "not valid CSV" in pull.last_error
    cohort = Cohort.objects.get(pk=pull.cohort_id)
    assert members_of(cohort) == {"keep-1", "keep-2"} and cohort.member_count == 2


def test_the_file_is_read_as_a_stream():
    pulled = []

    def lines():
        yield "amplitude_id,user_id\n"
        for n in range(5000):
            pulled.append(n)
            yield f"{n},user-{n}\n"

    counts = FileCounts()
    chunks = read_members(lines(), counts, chunk=100)
    first = next(chunks)
    assert len(first) == 100
    assert len(pulled) < 200  # only what the first chunk needed was read
    assert sum(len(chunk) for chunk in chunks) == 4900 and counts.rows == 5000


def test_an_empty_file_is_refused():
    with pytest.raises(BadFile, match="empty"):
        list(read_members(iter([]), FileCounts()))


# Picking a cohort, and the quota


def test_a_pull_is_created_audited_and_dispatched_once(sandbox, rq_redis):
    seed(sandbox, ["a", "b"])
    pull = pull_once(sandbox)
    assert AuditEntry.objects.filter(action="cohort.pull_created").exists()
    cohort = Cohort.objects.get(pk=pull.cohort_id)
    assert (cohort.source, cohort.partner, cohort.partner_cohort_id) == (
        "partner",
        "amplitude",
        AMP_ID,
    )
    assert dispatch_due_pulls() == 1
    assert dispatch_due_pulls() == 0  # its next_run_at moved on: nothing queued twice
    run_jobs("runs")
    assert members_of(cohort) == {"a", "b"}


def test_an_hourly_cadence_is_refused_past_the_quota_and_nothing_is_saved(sandbox):
    source = make_source(sandbox)
    with pytest.raises(ValidationError, match="past Amplitude's quota of 500"):
        create_pull(
            connection=source, amplitude_cohort_id=AMP_ID, name="P", cadence="hourly", actor=None
        )
    assert not AmplitudePull.objects.exists() and not Cohort.objects.exists()


def test_daily_pulls_fit_until_the_projection_passes_the_quota(sandbox):
    source = make_source(sandbox)
    for n in range(16):  # 16 x 30 = 480
        create_pull(
            connection=source,
            amplitude_cohort_id=f"c{n}",
            name=f"C{n}",
            cadence="daily",
            actor=None,
        )
    create_pull(connection=source, amplitude_cohort_id="once", name="O", cadence="once", actor=None)
    assert usage(source.pk).projected == 481
    with pytest.raises(ValidationError, match="other pulls \\(481 a month\\)"):
        create_pull(
            connection=source, amplitude_cohort_id="x", name="X", cadence="daily", actor=None
        )
    once = AmplitudePull.objects.get(amplitude_cohort_id="once")
    with pytest.raises(ValidationError):
        change_cadence(pull=once, cadence="daily", actor=None)
    once.refresh_from_db()
    assert once.cadence == "once" and AmplitudePull.objects.count() == 17


def test_downloads_used_are_counted_this_month_only(sandbox):
    source = make_source(sandbox)
    AmplitudeDownloadRequest.objects.create(connection=source, request_id="r1")
    AmplitudeDownloadRequest.objects.create(
        connection=source, request_id="r0", requested_at=timezone.now() - timedelta(days=40)
    )
    assert usage(source.pk).used == 1


def test_a_destination_cannot_be_pulled_from(sandbox):
    with pytest.raises(ValidationError, match="not a source"):
        create_pull(
            connection=make_connection(),
            amplitude_cohort_id=AMP_ID,
            name="P",
            cadence="once",
            actor=None,
        )
    assert not AmplitudePull.objects.exists()


def test_a_cohort_cannot_be_pulled_twice(sandbox):
    pull = pull_once(sandbox)
    with pytest.raises(ValidationError, match="already pulled"):
        create_pull(
            connection=pull.connection,
            amplitude_cohort_id=AMP_ID,
            name="P",
            cadence="once",
            actor=None,
        )
    assert AmplitudePull.objects.count() == 1


def test_unreadable_keys_fail_the_pull_with_a_clear_error_and_no_request(sandbox):
    from connections import crypto

    pull = _good_first_pull(sandbox)
    pull.connection.__class__.objects.filter(pk=pull.connection_id).update(
        encrypted_secret=crypto.encrypt("not json")
    )
    pull = run(pull)
    assert pull.status == AmplitudePull.Status.FAILED
    assert "enter the API key and secret key again" in pull.last_error
    assert AmplitudeDownloadRequest.objects.count() == 1  # the first pull's only
    assert members_of(pull.cohort) == {"keep-1", "keep-2"}


@pytest.mark.django_db(transaction=True)
def test_a_reader_sees_the_members_before_or_after_never_half(sandbox, monkeypatch):
    """While the download is being applied (two chunks written, more to come), another
    connection reads the cohort: it sees the old members, all of them and only them."""
    import threading

    from django.db import connection as default_connection
    from django.db import connections

    if default_connection.vendor != "postgresql":
        pytest.skip("SQLite's in-memory test database locks tables against a second reader")
    from cohorts.membership import Identity, apply_changes

    seed(sandbox, [f"new-{n}" for n in range(3500)])
    pull = pull_once(sandbox)
    old = {f"old-{n}" for n in range(1000)}
    apply_changes(pull.cohort_id, add=[Identity("external_id", value) for value in old])
    seen: dict[str, object] = {}

    def read_from_another_connection():
        try:
            cohort = Cohort.objects.get(pk=pull.cohort_id)
            seen["count"] = cohort.member_count
            seen["members"] = members_of(cohort)
        finally:
            connections.close_all()

    real = pull_run.read_members

    def reading_midway(lines, counts, **kwargs):
        for number, chunk in enumerate(real(lines, counts, **kwargs), start=1):
            yield chunk
            if number == 2:  # the first two chunks are written by now, uncommitted
                reader = threading.Thread(target=read_from_another_connection)
                reader.start()
                reader.join()

    monkeypatch.setattr(pull_run, "read_members", reading_midway)
    pull = run(pull)
    assert pull.status == AmplitudePull.Status.SUCCEEDED
    assert seen == {"count": 1000, "members": old}
    assert members_of(pull.cohort) == {f"new-{n}" for n in range(3500)}


def test_rqcron_dispatches_due_pulls_every_minute_on_the_default_queue():
    import importlib
    from unittest import mock

    import cohortsync.cron
    from cohorts.jobs import dispatch_due_pulls as job

    with mock.patch("rq.cron.register") as register:
        importlib.reload(cohortsync.cron)
    [call] = [c for c in register.call_args_list if c.kwargs.get("name") == "dispatch_due_pulls"]
    assert call.args[0] is job
    assert (call.kwargs["queue_name"], call.kwargs["cron"]) == ("default", "* * * * *")


def test_a_cadence_changed_during_a_download_schedules_the_next_by_the_new_one(
    sandbox, monkeypatch
):
    seed(sandbox, ["a"])
    pull = pull_once(sandbox, cadence="once")
    real = pull_run.read_members

    def changed_meanwhile(lines, counts, **kwargs):
        change_cadence(pull=AmplitudePull.objects.get(pk=pull.pk), cadence="daily", actor=None)
        yield from real(lines, counts, **kwargs)

    monkeypatch.setattr(pull_run, "read_members", changed_meanwhile)
    pull = run(pull)
    assert pull.cadence == "daily"
    assert pull.next_run_at == pull.last_success_at + timedelta(days=1)


@pytest.mark.usefixtures("rq_redis")
def test_the_dispatcher_spreads_one_sources_pulls_over_the_minutes(sandbox):
    source = make_source(sandbox)
    for n in range(6):
        create_pull(
            connection=source, amplitude_cohort_id=f"c{n}", name=f"C{n}", cadence="once", actor=None
        )
    assert dispatch_due_pulls() == 4
    assert dispatch_due_pulls() == 2
    assert dispatch_due_pulls() == 0


def test_refused_keys_fail_the_pull_and_the_source_needs_attention(sandbox):
    from connections.models import Connection

    pull = _good_first_pull(sandbox)
    sandbox.state.amplitude_keys.clear()
    pull = run(pull)
    assert pull.status == AmplitudePull.Status.FAILED
    assert "Invalid API key or secret key" in pull.last_error
    source = Connection.objects.get(pk=pull.connection_id)
    assert source.state == Connection.State.NEEDS_ATTENTION
    assert "Invalid API key" in source.last_error
    assert AuditEntry.objects.filter(action="connection.auth_failed").count() == 1
    assert members_of(pull.cohort) == {"keep-1", "keep-2"}

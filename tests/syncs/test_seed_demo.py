import pytest
from django.core.management import CommandError, call_command

from connections.models import Connection
from syncs.models import Sync

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent_and_says_how_to_log_in(settings, capsys, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.DEV_ENV_FILE = tmp_path / "dev.env"
    settings.DEBUG = True
    call_command("seed_demo")
    first = capsys.readouterr().out
    call_command("seed_demo")
    second = capsys.readouterr().out
    assert "admin@example.com" in first
    assert first.splitlines()[-1] == second.splitlines()[-1]  # same password both times
    assert Connection.objects.count() == 3  # Braze, AppsFlyer, the Amplitude source
    braze = Connection.objects.get(kind="braze")
    assert braze.get_config().rest_endpoint == "http://127.0.0.1:8765"
    membership = Sync.objects.filter(kind=Sync.Kind.MEMBERSHIP, cohort__source="manual")
    syncs = {sync.connection.kind: sync for sync in membership.select_related("connection")}
    # Two trait syncs: the demo subscribers' and the Amplitude cohort's.
    traits = Sync.objects.filter(kind=Sync.Kind.TRAITS).order_by("name")
    assert [(sync.name, sync.cohort.name) for sync in traits] == [
        ("Demo: subscriber traits → Braze", "Demo: subscribers"),
        ("Demo: trial user traits → Braze", "Demo: trial users (Amplitude)"),
    ]
    assert set(syncs) == {"braze", "appsflyer"}
    assert syncs["braze"].connection == braze
    assert syncs["braze"].cohort.member_count == 520
    assert syncs["appsflyer"].cohort == syncs["braze"].cohort
    assert all(sync.next_run_at is not None for sync in syncs.values())
    # Later manage.py commands in this checkout run in development mode (settings read it).
    assert (tmp_path / "dev.env").read_text().splitlines()[-1] == "DEBUG=true"
    assert "sandbox-braze-rest-key" in first  # the simulator's credentials, said once


def test_seed_demo_refuses_to_run_in_production(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG=true"):
        call_command("seed_demo")


@pytest.mark.usefixtures("rq_redis")
def test_the_demo_syncs_run_to_both_sandboxes(settings, tmp_path, sandbox):
    from urllib.parse import urlsplit

    from syncs.models import SyncRun
    from syncs.scheduling.dispatch import dispatch_due_syncs
    from tests.jobs import run_jobs

    settings.VAR_DIR = tmp_path
    settings.DEV_ENV_FILE = tmp_path / "dev.env"
    settings.DEBUG = True
    call_command("seed_demo", sandbox_port=urlsplit(sandbox.url).port)
    # The two lapsed-buyer syncs and the subscribers' trait sync; the Amplitude cohort's
    # real-time syncs wait for its first download.
    assert dispatch_due_syncs() == 3
    run_jobs()
    assert SyncRun.objects.count() == 3
    membership = SyncRun.objects.filter(updates_traits=False).select_related("sync")
    runs = {run.sync.connection.kind: run for run in membership}
    assert runs["braze"].status == SyncRun.Status.SUCCEEDED
    assert runs["braze"].added == 500  # the 20 device-only members have no usable identifier
    assert runs["appsflyer"].status == SyncRun.Status.SUCCEEDED
    assert (runs["appsflyer"].added, runs["appsflyer"].skipped) == (400, 120)
    # Each connection was tested by the check job against the simulator, not declared healthy.
    for connection in Connection.objects.all():
        check = connection.checks.get()
        assert (check.status, connection.state) == ("ok", Connection.State.HEALTHY)
        assert connection.last_checked_at is not None


@pytest.mark.usefixtures("rq_redis")
def test_seeded_before_the_stack_the_checks_wait_and_run_once_redis_is_up(
    settings, tmp_path, sandbox, capsys, caplog
):
    from datetime import timedelta
    from urllib.parse import urlsplit

    from django.utils import timezone

    from connections.queue import requeue_waiting_checks
    from tests.jobs import run_jobs
    from tests.queues import queues_at

    settings.VAR_DIR = tmp_path
    settings.DEBUG = True
    reachable = settings.RQ_QUEUES
    settings.RQ_QUEUES = queues_at("redis://127.0.0.1:1/0", timeout=5)  # make run: no Redis yet
    call_command("seed_demo", sandbox_port=urlsplit(sandbox.url).port)
    call_command("seed_demo", sandbox_port=urlsplit(sandbox.url).port)  # a second make run
    assert "a worker runs it once the stack is up" in capsys.readouterr().out
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # no alarm on make run
    assert all(c.state == Connection.State.UNTESTED for c in Connection.objects.all())
    assert [c.checks.count() for c in Connection.objects.all()] == [1, 1, 1]  # not one per run

    settings.RQ_QUEUES = reachable  # the stack is up: the cron queues the waiting checks
    assert requeue_waiting_checks(now=timezone.now() + timedelta(minutes=2)) == 3
    run_jobs()
    assert all(c.state == Connection.State.HEALTHY for c in Connection.objects.all())


@pytest.mark.usefixtures("rq_redis")
def test_the_demo_trait_sync_writes_its_members_properties_to_braze(settings, tmp_path, sandbox):
    from urllib.parse import urlsplit

    import requests

    from syncs.models import SyncRun
    from syncs.scheduling.dispatch import dispatch_due_syncs
    from tests.jobs import run_jobs

    settings.VAR_DIR = tmp_path
    settings.DEV_ENV_FILE = tmp_path / "dev.env"
    settings.DEBUG = True
    call_command("seed_demo", sandbox_port=urlsplit(sandbox.url).port)
    dispatch_due_syncs()
    run_jobs()
    run = SyncRun.objects.get(updates_traits=True)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error_summary
    # 200 subscribers by external ID; the 5 tablets have none and are skipped.
    assert (run.added, run.skipped) == (200, 5)
    # Each sends seats, annual, renews_at and features; 6 in 7 a plan too.
    assert run.attributes_written == 200 * 4 + sum(1 for n in range(200) if n % 7)
    profiles = requests.get(f"{sandbox.url}/_sandbox/braze/profiles", timeout=30).json()
    first = profiles["profiles"]["external_id:demo-subscriber-0001"]
    assert first["plan"] == "pro" and first["seat_count"] == 2 and first["annual"] is False
    assert first["renews_at"] == "2027-01-02T00:00:00Z" and first["features"] == ["reports"]
    assert "city" not in first

"""Invariants 1, 2, 3 and 6 of docs/architecture.md (§6), as properties and races.

1. A member accepted by a partner is in the ledger; a member in the ledger was accepted.
2. Counts of a finished run add up: planned = done + failed + skipped.
3. No two runs of one sync are running at once.
6. No run stays `running` after its worker died: within two minutes it is resumed or failed.

Runs go through the real engine against the partner simulator over HTTP, with per-object
rejections and retryable faults injected at random; the engine's sleep is injected, so backoff
costs no time. The race for invariant 3 uses real OS processes on a shared scratch database.
"""

import functools
import importlib
import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import django_rq
import pytest
import requests
from django.db import IntegrityError, connection, transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rq.job import Job

from cohorts.membership import Identity, apply_changes
from syncs.engine.outcome import finish_run
from syncs.engine.run import run_sync
from syncs.models import Sync, SyncedMember, SyncRun, SyncRunEvent
from syncs.scheduling.dispatch import dispatch_due_syncs
from syncs.scheduling.reaper import MAX_INTERRUPTIONS, STALE_HEARTBEAT, reap_stuck_runs
from syncs.services import start_run
from tests.factories import make_cohort, make_simulator_connection, make_sync
from tests.worker_process import query, race, scratch_database, shell

pytestmark = pytest.mark.django_db

ARRAY = "cohortsync_cohorts"
FINISHED = {SyncRun.Status.SUCCEEDED, SyncRun.Status.PARTIALLY_FAILED, SyncRun.Status.FAILED}
NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TWO_MINUTES = timedelta(minutes=2)
_examples = itertools.count(1)
examples = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def no_sleep(seconds: float) -> None:
    """Backoff and bucket waits are recorded by the engine, not waited for."""


def counts_add_up(run: SyncRun) -> bool:
    return run.planned == run.added + run.removed + run.failed + run.skipped


# Invariants 1 and 2: random cohort changes and runs, with partner errors ---------------------

POOL = 160  # member numbers; a run of the whole pool takes three batches of 75


@dataclass(frozen=True)
class Change:
    add: bool
    first: int
    last: int


@dataclass(frozen=True)
class DeviceMembers:
    """Members that only have a device id: the sync's mapping (external_id) skips them."""

    count: int


@dataclass(frozen=True)
class Run:
    rejected: frozenset[int]  # members whose objects the partner rejects in this run
    faults: tuple[int, ...]  # statuses answered to the run's first requests


steps = st.lists(
    st.one_of(
        st.builds(Change, st.booleans(), st.integers(0, POOL - 1), st.integers(0, POOL - 1)),
        st.builds(DeviceMembers, st.integers(1, 3)),
        st.builds(
            Run,
            st.frozensets(st.integers(0, POOL - 1), max_size=6),
            # Six failures in a row stop a run: sometimes a run fails part-way.
            st.lists(st.sampled_from([429, 500, 502, 503]), max_size=7).map(tuple),
        ),
    ),
    min_size=1,
    max_size=8,
)


class Partner:
    """The simulator as the test drives it: faults and per-object rejections per run, and what
    it holds for a cohort."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.url = f"{sandbox.url}/_sandbox"

    def reset(self) -> None:
        requests.post(f"{self.url}/reset", timeout=5).raise_for_status()

    def prepare(self, faults: tuple[int, ...], rejected: list[str]) -> None:
        body = {"partner": "braze", "statuses": list(faults)}
        requests.post(f"{self.url}/faults", json=body, timeout=5).raise_for_status()
        if rejected:
            keys = [f"external_id:{value}" for value in rejected]
            body = {"identifiers": keys, "error": "Invalid attribute object"}
            requests.post(f"{self.url}/braze/rejections", json=body, timeout=5).raise_for_status()

    def calm(self) -> None:
        """No more faults or rejections (the control API only adds rejections)."""
        body = {"partner": "braze", "statuses": []}
        requests.post(f"{self.url}/faults", json=body, timeout=5).raise_for_status()
        with self.sandbox.state.lock:
            self.sandbox.state.braze_rejections.clear()

    def holds(self, cohort_name: str) -> set[str]:
        profiles = requests.get(f"{self.url}/braze/profiles", timeout=10).json()["profiles"]
        return {
            key.removeprefix("external_id:")
            for key, attributes in profiles.items()
            if cohort_name in (attributes.get(ARRAY) or [])
        }


def ledger(sync: Sync) -> set[str]:
    return set(SyncedMember.objects.filter(sync=sync).values_list("dest_value", flat=True))


def run_once(sync: Sync) -> SyncRun:
    run, created = start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)
    assert created
    run_sync(run.pk, sleep=no_sleep)
    run.refresh_from_db()
    return run


def check_invariants(run: SyncRun, sync: Sync, partner: Partner) -> None:
    assert run.status in FINISHED, run.status
    # 2: planned = added + removed + failed + skipped, whatever the outcome.
    assert counts_add_up(run), (run.planned_adds, run.planned_removes, run.processed)
    # 1: what the partner holds for this sync is exactly the ledger.
    assert partner.holds(sync.cohort.name) == ledger(sync)


@pytest.fixture
def partner(sandbox: Any) -> Partner:
    return Partner(sandbox)


@pytest.fixture
def braze(sandbox: Any, rq_redis: Any, db: Any) -> Any:
    return make_simulator_connection(sandbox)


@examples
@given(steps=steps)
def test_after_every_run_the_ledger_is_what_the_partner_holds_and_counts_add_up(
    braze, partner, steps
):
    partner.reset()
    n = next(_examples)
    cohort = make_cohort(name=f"Invariant {n}")
    # A connection per example: earlier examples' syncs stay, and one connection takes no more
    # cohorts into its array than its cap (invariant 9).
    connection = make_simulator_connection(partner.sandbox, name=f"{braze.name} {n}")
    sync = make_sync(
        name=f"invariant {n}",
        cohort=cohort,
        connection=connection,
        mass_removal_threshold_pct=100,  # never held: every run sends
    )
    member = [f"e{n}-m{i:03}" for i in range(POOL)]
    devices = itertools.count()
    for step in steps:
        if isinstance(step, Change):
            chosen = [Identity("external_id", v) for v in member[step.first : step.last + 1]]
            apply_changes(
                cohort.pk, add=chosen if step.add else [], remove=[] if step.add else chosen
            )
        elif isinstance(step, DeviceMembers):
            fresh = [Identity("device_id", f"e{n}-d{next(devices)}") for _ in range(step.count)]
            apply_changes(cohort.pk, add=fresh)
        else:
            partner.prepare(step.faults, [member[i] for i in step.rejected])
            try:
                run = run_once(sync)
            finally:
                partner.calm()
            event(f"run {run.status}")
            check_invariants(run, sync, partner)
    # A run with a calm partner then leaves the destination equal to the cohort.
    final = run_once(sync)
    check_invariants(final, sync, partner)
    assert final.status == SyncRun.Status.SUCCEEDED
    in_cohort = set(cohort.members.filter(id_type="external_id").values_list("value", flat=True))
    assert ledger(sync) == in_cohort


# Invariant 3: no two queued-or-running runs of one sync -------------------------------------


@pytest.fixture
def hourly(braze: Any) -> Sync:
    cadence = {"kind": "hourly", "minute": 0}
    return make_sync(
        name="hourly", cohort=make_cohort(name="Race"), connection=braze, cadence=cadence
    )


def test_the_database_refuses_a_second_active_run_of_a_sync(hourly):
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "syncs_syncrun")
    index = constraints["one_active_run_per_sync"]
    assert (index["columns"], index["unique"]) == (["sync_id"], True)
    first = SyncRun.objects.create(sync=hourly, trigger=SyncRun.Trigger.MANUAL)
    for status in SyncRun.ACTIVE:
        with pytest.raises(IntegrityError), transaction.atomic():
            SyncRun.objects.create(sync=hourly, trigger=SyncRun.Trigger.API, status=status)
    # Only active runs are unique: finished ones pile up beside the active one.
    SyncRun.objects.filter(pk=first.pk).update(status=SyncRun.Status.RUNNING)
    for status in FINISHED:
        SyncRun.objects.create(sync=hourly, trigger=SyncRun.Trigger.API, status=status)
    assert SyncRun.objects.filter(sync=hourly, status__in=SyncRun.ACTIVE).count() == 1


def test_every_trigger_coalesces_into_the_running_run(hourly, rq_redis):
    running = SyncRun.objects.create(
        sync=hourly, trigger=SyncRun.Trigger.SCHEDULE, status=SyncRun.Status.RUNNING
    )
    for trigger in (SyncRun.Trigger.MANUAL, SyncRun.Trigger.API, SyncRun.Trigger.REALTIME):
        assert start_run(sync=hourly, trigger=trigger, actor=None) == (running, False)
    Sync.objects.filter(pk=hourly.pk).update(next_run_at=NOON)
    # The due slot is taken (next_run_at moves on) but no second run starts.
    assert dispatch_due_syncs(now=NOON + timedelta(seconds=5)) == 0
    hourly.refresh_from_db()
    assert hourly.next_run_at == NOON + timedelta(hours=1)
    assert list(SyncRun.objects.filter(sync=hourly)) == [running]
    assert rq_redis.llen("rq:queue:default") == 0


@pytest.fixture(scope="module")
def scratch_env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with scratch_database(tmp_path_factory.mktemp("invariants"), "invariants") as env:
        yield env


SETUP_RACE = """
import json, os
from datetime import datetime
from connections.partners import PARTNERS
from connections.services import create_connection
from cohorts.models import Cohort
from syncs.models import Sync
from syncs.services import create_sync
name = os.environ["NAME"]
config = PARTNERS["braze"].parse_config(
    {"instance": "custom", "custom_endpoint": "https://rest.iad-01.braze.com"}
)
connection = create_connection(
    kind="braze", name=name, config=config, secret="braze-rest-key-0000-1a2b", actor=None
)
cohort = Cohort.objects.create(name=name, source=Cohort.Source.MANUAL)
ids = {}
cadences = {"hourly": {"kind": "hourly", "minute": 0}, "realtime": {"kind": "realtime"}}
for kind, cadence in cadences.items():
    ids[kind] = [
        create_sync(
            name=f"{name} {kind} {n}", cohort=cohort, connection=connection,
            identifier_mapping=["external_id"], cadence=cadence, actor=None,
        ).pk
        for n in range(int(os.environ["PER_KIND"]))
    ]
Sync.objects.filter(pk__in=ids["hourly"]).update(next_run_at=datetime.fromisoformat(os.environ["DUE"]))
print(json.dumps({"cohort": cohort.pk, **ids}))
"""

# Each racer reports how many runs it created.
DISPATCHER = """
import json, os
from datetime import datetime
from syncs.scheduling.dispatch import dispatch_due_syncs
print(json.dumps(dispatch_due_syncs(now=datetime.fromisoformat(os.environ["NOW"]))))
"""
CLICKER = """
import json, os
from syncs.models import Sync, SyncRun
from syncs.services import start_run
created = 0
for sync in Sync.objects.filter(cohort_id=os.environ["COHORT_ID"]).order_by("?"):
    created += start_run(sync=sync, trigger=SyncRun.Trigger.MANUAL, actor=None)[1]
print(json.dumps(created))
"""
CHANGE = """
import json, os
from syncs.scheduling.realtime import on_cohort_changed
on_cohort_changed(sender=None, cohort_id=int(os.environ["COHORT_ID"]))
print(json.dumps(None))
"""


def test_racing_dispatchers_clicks_and_changes_make_one_run_per_sync(
    scratch_env, redis_url, rq_redis, tmp_path
):
    env = {**scratch_env, "REDIS_URL": redis_url}
    ids = shell(env, SETUP_RACE, NAME=f"race-{uuid.uuid4().hex[:8]}", PER_KIND="15", DUE=str(NOON))
    syncs = ids["hourly"] + ids["realtime"]
    racers = [DISPATCHER, DISPATCHER, CLICKER, CLICKER, CHANGE, CHANGE]
    race(
        {**env, "NOW": str(NOON + timedelta(seconds=5)), "COHORT_ID": str(ids["cohort"])},
        tmp_path,
        racers,
    )

    placeholders = ", ".join(["%s"] * len(syncs))
    runs = query(
        env,
        f"SELECT id, sync_id, status FROM syncs_syncrun WHERE sync_id IN ({placeholders})",  # noqa: S608
        tuple(syncs),
    )
    # Every sync got a run (several racers reached each), and only one: none failed either.
    assert sorted(sync for _, sync, _ in runs) == sorted(syncs)
    assert {status for _, _, status in runs} == {"queued"}
    # One job per run, none for a run that lost the race.
    queue = django_rq.get_queue("runs")
    assert sorted(queue.job_ids) == sorted(f"sync-run-{run}-0" for run, _, _ in runs)


# Invariant 6: a run whose worker died is resumed or failed within two minutes ---------------


def dead_run(sync: Sync, *, died_at: datetime, interruptions: int, added: int) -> SyncRun:
    """A run as a worker that died at `died_at` leaves it: running, last heartbeat then."""
    return SyncRun.objects.create(
        sync=sync,
        trigger=SyncRun.Trigger.SCHEDULE,
        status=SyncRun.Status.RUNNING,
        queued_at=died_at - timedelta(minutes=1),
        started_at=died_at - timedelta(minutes=1),
        heartbeat_at=died_at,
        planned_adds=300,
        added=added,
        add_cursor=added,
        interruptions=interruptions,
    )


@examples
@given(
    interruptions=st.integers(0, 5),
    added=st.integers(0, 300),
    died_at=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
    alive_for=st.timedeltas(min_value=timedelta(0), max_value=STALE_HEARTBEAT),
)
def test_a_run_whose_worker_died_is_resumed_or_failed_within_two_minutes(
    hourly, rq_redis, interruptions, added, died_at, alive_for
):
    SyncRun.objects.filter(sync=hourly).delete()
    run = dead_run(hourly, died_at=died_at, interruptions=interruptions, added=added)
    # While the heartbeat is recent, the worker may be alive: the reaper leaves the run alone.
    assert reap_stuck_runs(now=died_at + alive_for) == 0
    assert reap_stuck_runs(now=died_at + TWO_MINUTES) == 1
    run.refresh_from_db()
    kinds = list(SyncRunEvent.objects.filter(run=run).values_list("kind", flat=True))
    assert kinds[-1 if interruptions < MAX_INTERRUPTIONS else -2] == SyncRunEvent.Kind.INTERRUPTED
    if interruptions < MAX_INTERRUPTIONS:
        event("resumed")
        assert (run.status, run.interruptions) == (SyncRun.Status.QUEUED, interruptions + 1)
        job = Job.fetch(
            f"sync-run-{run.pk}-{interruptions + 1}", connection=django_rq.get_connection()
        )
        assert job.args == (run.pk,)
        # The resume goes on from the checkpoint: the progress is kept.
        assert (run.added, run.add_cursor) == (added, added)
    else:
        event("failed")
        assert run.status == SyncRun.Status.FAILED
        assert f"{interruptions + 1} times" in run.error_summary
        assert kinds[-1] == SyncRunEvent.Kind.FINISHED
        assert counts_add_up(run)
    # Once resumed or failed, the run is no one's to rescue any more.
    assert reap_stuck_runs(now=died_at + TWO_MINUTES) == 0


@functools.cache
def reaper_interval() -> int:
    """How often the deployed cron (cohortsync/cron.py) runs reap_stuck_runs, in seconds."""
    import cohortsync.cron

    with mock.patch("rq.cron.register") as register:
        importlib.reload(cohortsync.cron)
    [interval] = [
        call.kwargs["interval"]
        for call in register.call_args_list
        if call.kwargs.get("name") == "reap_stuck_runs"
    ]
    return int(interval)


def test_with_the_deployed_reaper_schedule_a_dead_workers_run_is_rescued_within_two_minutes(
    hourly, rq_redis
):
    every = timedelta(seconds=reaper_interval())
    late = []
    # The cron's ticks fall at any phase relative to the death: try them a second apart.
    for phase in range(int(every.total_seconds())):
        SyncRun.objects.filter(sync=hourly).delete()
        run = dead_run(hourly, died_at=NOON, interruptions=0, added=0)
        tick = NOON + timedelta(seconds=phase)
        while reap_stuck_runs(now=tick) == 0:
            tick += every
        run.refresh_from_db()
        assert run.status == SyncRun.Status.QUEUED
        if tick - NOON > TWO_MINUTES:
            late.append((phase, (tick - NOON).total_seconds()))
    # (phase, seconds from the death to the rescue) of every tick phase that is too late.
    assert late == []


def test_a_change_during_the_reapers_check_keeps_the_live_worker_s_run(hourly, rq_redis):
    """The compare-and-set on the heartbeat: a beat between the read and the update wins."""
    run = dead_run(hourly, died_at=NOON, interruptions=0, added=75)
    real_filter = SyncRun.objects.filter

    def beat_first(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("heartbeat_at") == NOON:  # the reaper's compare-and-set
            real_filter(pk=run.pk).update(heartbeat_at=NOON + TWO_MINUTES)
        return real_filter(*args, **kwargs)

    with mock.patch.object(SyncRun.objects, "filter", side_effect=beat_first):
        assert reap_stuck_runs(now=NOON + TWO_MINUTES) == 0
    run.refresh_from_db()
    assert (run.status, run.interruptions) == (SyncRun.Status.RUNNING, 0)
    finish_run(run, SyncRun.Status.SUCCEEDED, "")  # the live worker ends it as usual
    run.refresh_from_db()
    assert counts_add_up(run)

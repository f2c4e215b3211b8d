"""`manage.py partner_sandbox --processes 2` over real HTTP: one port, two processes, one rate
limit, settings that hold in both, counts and partner data read back from both.

Each request goes out on a fresh connection, which the kernel hands to either process
(SO_REUSEPORT); the simulator's /stats says how many requests each process answered, and the
tests check both answered before they draw conclusions about sharing.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.core.management import CommandError, call_command

from connections.sandbox import DEMO_APPSFLYER_TOKEN, DEMO_BRAZE_KEY

TIMEOUT = 10
# Fresh connections per test: with two processes, the chance that all of them land on one is
# 2**-39.
REQUESTS = 40
MANAGE = str(Path(settings.BASE_DIR) / "manage.py")


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    env = {**os.environ, "DEBUG": "true"}
    process = subprocess.Popen(
        [sys.executable, MANAGE, "partner_sandbox", "--port", "0", "--processes", "2"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"(http://\S+) \(2 processes\)", line)
        assert found, f"The simulator did not start: {line!r}"
        yield found.group(1)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


@pytest.fixture
def url(cluster_url: str) -> str:
    control(cluster_url, "reset", {})
    return cluster_url


def control(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    if body is None:
        response = requests.get(f"{url}/_sandbox/{path}", timeout=TIMEOUT)
    else:
        response = requests.post(f"{url}/_sandbox/{path}", json=body, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def track(url: str, objects: list[dict[str, Any]], key: str = DEMO_BRAZE_KEY) -> int:
    """One /users/track on a connection of its own (requests.post opens a new one)."""
    response = requests.post(
        f"{url}/users/track",
        json={"attributes": objects},
        headers={"Authorization": f"Bearer {key}", "Connection": "close"},
        timeout=TIMEOUT,
    )
    return response.status_code


def answered_by_each_process(url: str) -> list[int]:
    per_process: list[int] = control(url, "stats")["processes"]
    assert len(per_process) == 2
    return per_process


def test_a_rate_limit_holds_across_the_processes(url: str) -> None:
    # 10 requests an hour: no token comes back while the test runs.
    control(url, "config", {"braze_rate_limit": 10, "braze_rate_window": 3600})

    statuses = [track(url, [{"external_id": f"u-{n}", "seen": True}]) for n in range(REQUESTS)]

    assert statuses.count(201) == 10
    assert statuses.count(429) == REQUESTS - 10
    assert all(answered_by_each_process(url))
    stats = control(url, "stats")
    assert stats["requests"]["POST /users/track"] == {"201": 10, "429": REQUESTS - 10}


def test_a_key_added_and_revoked_through_one_process_holds_in_both(url: str) -> None:
    control(url, "braze/keys", {"key": "second-key", "permissions": ["users.track"]})
    added = [track(url, [{"external_id": "u-1", "a": 1}], key="second-key") for _ in range(20)]

    control(url, "braze/keys/revoke", {"key": "second-key"})
    revoked = [track(url, [{"external_id": "u-1", "a": 1}], key="second-key") for _ in range(20)]

    assert added == [201] * 20
    assert revoked == [401] * 20
    assert all(answered_by_each_process(url))


def test_profiles_written_through_both_processes_read_back_together(url: str) -> None:
    for n in range(REQUESTS):
        created = {"external_id": f"u-{n}", "plan": "gold", "_update_existing_only": False}
        assert track(url, [created]) == 201
    assert all(answered_by_each_process(url))

    profiles = control(url, "braze/profiles")["profiles"]

    assert profiles == {f"external_id:u-{n}": {"plan": "gold"} for n in range(REQUESTS)}
    assert control(url, "braze/profiles/external_id:u-7")["attributes"] == {"plan": "gold"}
    missing = requests.get(f"{url}/_sandbox/braze/profiles/external_id:nobody", timeout=TIMEOUT)
    assert missing.status_code == 404


def test_a_profile_written_through_both_processes_is_refused_rather_than_shown_wrong(
    url: str,
) -> None:
    for _ in range(REQUESTS):
        update = {"external_id": "u-1", "visits": {"inc": 1}, "_update_existing_only": False}
        assert track(url, [update]) == 201
    assert all(answered_by_each_process(url))

    one = requests.get(f"{url}/_sandbox/braze/profiles/external_id:u-1", timeout=TIMEOUT)
    every = requests.get(f"{url}/_sandbox/braze/profiles", timeout=TIMEOUT)

    assert one.status_code == every.status_code == 409
    assert "several processes" in one.json()["message"]


def test_injected_statuses_are_refused_with_a_clear_error_and_change_nothing(url: str) -> None:
    refused = requests.post(
        f"{url}/_sandbox/faults", json={"partner": "braze", "statuses": [500]}, timeout=TIMEOUT
    )
    latency = control(url, "faults", {"partner": "braze", "latency_ms": 1})

    assert refused.status_code == 409
    assert "single-process simulator" in refused.json()["message"]
    assert latency == {"partner": "braze", "statuses": [], "latency_ms": 1}
    assert [track(url, [{"external_id": "u-1", "a": 1}]) for _ in range(10)] == [201] * 10


def test_an_appsflyer_audience_made_through_one_process_takes_imports_in_both(url: str) -> None:
    headers = {"Authorization": f"Bearer {DEMO_APPSFLYER_TOKEN}", "Connection": "close"}
    made = requests.post(
        f"{url}/api/audiences-external-api/audience",
        json={"audience_name": "Churn risk", "platform": "android"},
        headers=headers,
        timeout=TIMEOUT,
    )
    assert made.status_code == 200, made.text
    import_key = made.json()["message"]["import_key"]

    statuses = [
        requests.post(
            f"{url}/api/audiences-import-api/v2/add",
            json={
                "import_key": import_key,
                "platform": "android",
                "devices": [{"app_id": "com.example.app", "gaid": f"g-{n}"}],
            },
            headers=headers,
            timeout=TIMEOUT,
        ).status_code
        for n in range(REQUESTS)
    ]

    assert statuses == [200] * REQUESTS
    assert all(answered_by_each_process(url))


def test_amplitude_download_is_refused_with_a_clear_error(url: str) -> None:
    answer = requests.get(f"{url}/api/3/cohorts", timeout=TIMEOUT)

    assert answer.status_code == 409
    assert "single-process simulator" in answer.json()["message"]


def test_the_command_refuses_fewer_than_one_process() -> None:
    with pytest.raises(CommandError, match="--processes must be at least 1"):
        call_command("partner_sandbox", "--processes", "0")

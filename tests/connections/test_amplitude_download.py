"""Amplitude's Behavioral Cohorts download against the simulator over real HTTP: the export
polled until complete, the file inline or behind a storage link (followed without the Basic
credentials, re-requested once when it expired), a failed job, and the monthly quota."""

import io
import json

import pytest
import requests

from connections.partners.amplitude.download import download_file, export_ready, request_export
from connections.partners.amplitude.partner import Amplitude
from connections.partners.http import PartnerError
from connections.sandbox import DEMO_AMPLITUDE_API_KEY, DEMO_AMPLITUDE_SECRET_KEY

MEMBERS = [{"user_id": f"user-{n}", "amplitude_id": 1000 + n} for n in range(300)]


def adapter(sandbox, secret_key=DEMO_AMPLITUDE_SECRET_KEY):
    config = Amplitude.parse_config(Amplitude.simulator_config(sandbox.url))
    secret = json.dumps({"api_key": DEMO_AMPLITUDE_API_KEY, "secret_key": secret_key})
    return Amplitude(config, secret)


def control(sandbox, route, body=None):
    response = requests.post(
        f"{sandbox.url}/_sandbox/amplitude/{route}", json=body or {}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def seeded(sandbox):
    control(sandbox, "cohorts", {"id": "7khm89cz", "name": "Power users", "members": MEMBERS})
    return sandbox


def _export(amp):
    request_id = request_export(amp, "7khm89cz")
    polls = 1
    while not export_ready(amp, request_id):
        polls += 1
    return request_id, polls


def test_the_export_answers_202_until_its_polls_are_done(seeded):
    control(seeded, "config", {"polls": 3})
    request_id, polls = _export(adapter(seeded))
    assert request_id.startswith("req-")
    assert polls == 4
    requests_seen = seeded.state.stats()["requests"]
    assert requests_seen[f"GET /api/5/cohorts/request-status/{request_id}"] == {"202": 3, "200": 1}


def test_a_small_file_comes_inline(seeded):
    amp = adapter(seeded)
    request_id, _ = _export(amp)
    into = io.BytesIO()
    size = download_file(amp, request_id, into)
    lines = into.getvalue().decode().splitlines()
    assert size == len(into.getvalue())
    assert lines[0] == "amplitude_id,user_id"
    assert lines[1:3] == ["1000,user-0", "1001,user-1"]
    assert len(lines) == 301


def test_a_large_file_is_fetched_from_the_storage_link_without_the_credentials(seeded):
    control(seeded, "config", {"inline_bytes": 100})
    amp = adapter(seeded)
    request_id, _ = _export(amp)
    into = io.BytesIO()
    download_file(amp, request_id, into)
    assert len(into.getvalue().decode().splitlines()) == 301
    assert seeded.state.stats()["requests"][f"GET /api/5/cohorts/request/{request_id}/file"] == {
        "302": 1
    }
    assert seeded.state.amplitude_usage()["storage_authorization_seen"] == 0


def test_an_expired_link_is_requested_again_once(seeded, monkeypatch):
    control(seeded, "config", {"inline_bytes": 100})
    amp = adapter(seeded)
    request_id, _ = _export(amp)
    # The first link expires between the 302 and its use; the second /file gives a fresh one.
    from connections.partners.amplitude import simulator

    first = simulator._file

    def expire_first(state, rid, headers):
        answer = first(state, rid, headers)
        if len(state.amplitude_links) == 1:
            state.expire_amplitude_links()
        return answer

    monkeypatch.setattr(simulator, "_file", expire_first)
    into = io.BytesIO()
    download_file(amp, request_id, into)
    assert len(into.getvalue().decode().splitlines()) == 301
    file_calls = seeded.state.stats()["requests"][f"GET /api/5/cohorts/request/{request_id}/file"]
    assert file_calls == {"302": 2}


def test_a_link_that_keeps_expiring_fails_the_download(seeded, monkeypatch):
    control(seeded, "config", {"inline_bytes": 100})
    amp = adapter(seeded)
    request_id, _ = _export(amp)
    from connections.partners.amplitude import simulator

    first = simulator._file

    def expire_all(state, rid, headers):
        answer = first(state, rid, headers)
        state.expire_amplitude_links()
        return answer

    monkeypatch.setattr(simulator, "_file", expire_all)
    with pytest.raises(PartnerError, match="Request has expired"):
        download_file(amp, request_id, io.BytesIO())


def test_a_failed_job_is_a_partner_error(seeded):
    control(seeded, "config", {"fail_jobs": 1, "polls": 0})
    amp = adapter(seeded)
    request_id = request_export(amp, "7khm89cz")
    with pytest.raises(PartnerError) as failed:
        export_ready(amp, request_id)
    assert failed.value.status == 500
    # The next job succeeds: the knob fails one job only.
    assert export_ready(amp, request_export(amp, "7khm89cz"))


def test_every_request_counts_against_the_month_and_the_quota_refuses(seeded):
    control(seeded, "config", {"monthly_quota": 2, "quota_status": 403})
    amp = adapter(seeded)
    request_export(amp, "7khm89cz")
    request_export(amp, "7khm89cz")
    with pytest.raises(PartnerError, match="quota") as refused:
        request_export(amp, "7khm89cz")
    assert refused.value.status == 403
    assert list(seeded.state.amplitude_usage()["downloads"].values()) == [2]


def test_wrong_keys_are_refused(seeded):
    with pytest.raises(PartnerError) as refused:
        request_export(adapter(seeded, secret_key="nobody-knows"), "7khm89cz")
    assert refused.value.auth
    assert seeded.state.amplitude_usage()["downloads"] == {}


def test_an_unknown_cohort_is_not_found(seeded):
    with pytest.raises(PartnerError) as refused:
        request_export(adapter(seeded), "nope")
    assert refused.value.status == 404


def test_properties_asked_for_become_columns(seeded):
    members = [{"user_id": "u1", "amplitude_id": 1, "plan": "pro", "city": "Lyon"}]
    control(seeded, "cohorts", {"id": "c2", "name": "With traits", "members": members})
    base = f"{seeded.url}/api/5/cohorts/request/c2"
    auth = (DEMO_AMPLITUDE_API_KEY, DEMO_AMPLITUDE_SECRET_KEY)
    request_id = requests.get(f"{base}?props=1&propKeys=plan", auth=auth, timeout=10).json()[
        "request_id"
    ]
    while (
        requests.get(
            f"{seeded.url}/api/5/cohorts/request-status/{request_id}", auth=auth, timeout=10
        ).status_code
        == 202
    ):
        pass
    text = requests.get(
        f"{seeded.url}/api/5/cohorts/request/{request_id}/file", auth=auth, timeout=10
    ).text
    assert text.splitlines() == ["amplitude_id,user_id,plan", "1,u1,pro"]


def test_a_large_cohort_is_seeded_in_several_requests_and_its_file_made_once(seeded):
    more = [{"user_id": f"late-{n}", "amplitude_id": 9000 + n} for n in range(5)]
    answer = control(
        seeded,
        "cohorts",
        {"id": "7khm89cz", "name": "Power users", "members": more, "append": True},
    )
    assert answer["members"] == len(MEMBERS) + 5
    amp = adapter(seeded)
    request_id, _ = _export(amp)
    # The export's file is the cohort as it was when the job completed, whatever comes after.
    control(seeded, "cohorts", {"id": "7khm89cz", "name": "Power users", "members": []})
    into = io.BytesIO()
    download_file(amp, request_id, into)
    rows = into.getvalue().decode().splitlines()
    assert len(rows) == 1 + len(MEMBERS) + 5
    assert rows[-1] == "9004,late-4"


@pytest.mark.parametrize(
    ("route", "body", "message"),
    [
        ("config", {"polls": -1}, "'polls' must not be negative"),
        ("config", {"speed": 1}, "Unknown Amplitude config keys: speed"),
        ("config", {"quota_status": 200}, "'quota_status' must be an HTTP error status"),
        ("cohorts", {"id": "a", "name": "A", "members": "x"}, "'members' must be an array"),
        ("cohorts", {"id": "a/b", "name": "A"}, "'id' must not contain '/'"),
        ("cohorts", {"id": "a", "name": "A", "append": "yes"}, "'append' must be a boolean"),
    ],
)
def test_the_control_api_refuses_bad_knobs(sandbox, route, body, message):
    response = requests.post(f"{sandbox.url}/_sandbox/amplitude/{route}", json=body, timeout=10)
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_a_redirect_to_a_forbidden_address_is_refused_by_the_egress_policy(seeded, monkeypatch):
    from connections.partners.amplitude import simulator

    monkeypatch.setattr(
        simulator,
        "_file",
        lambda state, rid, headers: (302, {"Location": "http://169.254.169.254/latest/"}, {}),
    )
    amp = adapter(seeded)
    request_id, _ = _export(amp)
    with pytest.raises(PartnerError, match=r"Refused to call 169\.254\.169\.254") as refused:
        download_file(amp, request_id, io.BytesIO())
    assert refused.value.unreachable and not refused.value.retryable


def test_a_redirect_without_a_location_is_an_error(seeded, monkeypatch):
    from connections.partners.amplitude import simulator

    monkeypatch.setattr(simulator, "_file", lambda state, rid, headers: (302, {}, {}))
    amp = adapter(seeded)
    request_id, _ = _export(amp)
    with pytest.raises(PartnerError, match="redirected the download nowhere usable"):
        download_file(amp, request_id, io.BytesIO())

"""The partner sandbox over real HTTP: a SandboxServer on a free port, driven with requests."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from connections.sandbox import DEMO_APPSFLYER_TOKEN, DEMO_BRAZE_KEY
from connections.sandbox.server import SandboxServer

TIMEOUT = 5
IMPORT_URL = "/api/audiences-import-api/v2"
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
NO_DATA = "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


def control(sandbox: SandboxServer, path: str, body: dict[str, Any] | None = None) -> Any:
    url = f"{sandbox.url}/_sandbox/{path}"
    if body is None:
        response = requests.get(url, timeout=TIMEOUT)
    else:
        response = requests.post(url, json=body, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def track(
    sandbox: SandboxServer, body: dict[str, Any], key: str = DEMO_BRAZE_KEY
) -> requests.Response:
    return requests.post(
        f"{sandbox.url}/users/track",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=TIMEOUT,
    )


def profile(sandbox: SandboxServer, key: str) -> requests.Response:
    return requests.get(f"{sandbox.url}/_sandbox/braze/profiles/{key}", timeout=TIMEOUT)


def appsflyer(
    sandbox: SandboxServer, path: str, body: Any = None, token: str = DEMO_APPSFLYER_TOKEN
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if body is None:
        return requests.get(f"{sandbox.url}{path}", headers=headers, timeout=TIMEOUT)
    return requests.post(f"{sandbox.url}{path}", json=body, headers=headers, timeout=TIMEOUT)


def new_audience(sandbox: SandboxServer, platform: str = "android") -> str:
    response = appsflyer(
        sandbox,
        "/api/audiences-external-api/audience",
        {"audience_name": f"Churn risk {platform}", "platform": platform},
    )
    assert response.status_code == 200, response.text
    import_key: str = response.json()["message"]["import_key"]
    return import_key


def devices(count: int, field: str = "cuid") -> list[dict[str, str]]:
    return [{"app_id": "com.example.app", field: f"u-{n}"} for n in range(count)]


# Braze /users/track


def test_unknown_braze_key_gets_401_without_echoing_the_key(sandbox: SandboxServer) -> None:
    response = track(sandbox, {"attributes": [{"external_id": "u-1"}]}, key="not-a-key")

    assert response.status_code == 401
    assert response.json() == {"message": "Invalid API key"}
    assert "not-a-key" not in response.text


def test_missing_authorization_header_gets_401(sandbox: SandboxServer) -> None:
    response = requests.post(f"{sandbox.url}/users/track", json={}, timeout=TIMEOUT)

    assert response.status_code == 401


def test_revoked_braze_key_gets_401(sandbox: SandboxServer) -> None:
    control(sandbox, "braze/keys/revoke", {"key": DEMO_BRAZE_KEY})

    response = track(sandbox, {"attributes": [{"external_id": "u-1"}]})

    assert response.status_code == 401


def test_braze_key_without_users_track_permission_gets_403(sandbox: SandboxServer) -> None:
    control(sandbox, "braze/keys", {"key": "export-only", "permissions": ["users.export.ids"]})

    response = track(sandbox, {"attributes": [{"external_id": "u-1"}]}, key="export-only")

    assert response.status_code == 403
    assert response.json() == {"message": "Access Denied"}


@pytest.mark.parametrize("body", [{}, {"attributes": [], "events": []}])
def test_request_without_objects_gets_400_valid_data_message(
    sandbox: SandboxServer, body: dict[str, Any]
) -> None:
    response = track(sandbox, body)

    assert response.status_code == 400
    assert response.json() == {"message": NO_DATA}


def test_body_that_is_not_a_json_object_gets_400(sandbox: SandboxServer) -> None:
    response = track(sandbox, [{"external_id": "u-1"}])  # type: ignore[arg-type]

    assert response.status_code == 400


def test_more_objects_than_the_cap_combined_gets_max_input_length_exceeded(
    sandbox: SandboxServer,
) -> None:
    control(sandbox, "config", {"braze_object_cap": 2})
    event = {"external_id": "u-1", "name": "opened", "time": "2025-07-01T09:30:00Z"}

    over = track(sandbox, {"attributes": [{"external_id": "u-1"}] * 2, "events": [event]})
    at_cap = track(sandbox, {"attributes": [{"external_id": "u-1"}], "events": [event]})

    assert over.status_code == 400
    assert over.json() == {"message": "Max Input Length Exceeded"}
    assert at_cap.status_code == 201
    assert at_cap.json() == {
        "message": "success",
        "attributes_processed": 1,
        "events_processed": 1,
    }


def test_default_object_cap_is_75_combined(sandbox: SandboxServer) -> None:
    objects = [{"external_id": f"u-{n}", "plan": "pro"} for n in range(76)]

    assert track(sandbox, {"attributes": objects[:75]}).status_code == 201
    assert track(sandbox, {"attributes": objects}).status_code == 400


def test_object_without_identifier_is_reported_by_index_and_the_rest_applied(
    sandbox: SandboxServer,
) -> None:
    response = track(
        sandbox,
        {"attributes": [{"external_id": "u-1", "plan": "pro"}, {"plan": "free"}]},
    )

    assert response.status_code == 201
    body = response.json()
    assert body["message"] == "success"
    assert body["attributes_processed"] == 1
    [error] = body["errors"]
    assert error["input_array"] == "attributes"
    assert error["index"] == 1
    assert error["type"]
    assert profile(sandbox, "external_id:u-1").json()["attributes"] == {"plan": "pro"}


def test_string_value_over_255_characters_is_rejected_for_that_object_only(
    sandbox: SandboxServer,
) -> None:
    response = track(
        sandbox,
        {"attributes": [{"external_id": "u-1", "bio": "x" * 256}, {"external_id": "u-2"}]},
    )

    assert response.status_code == 201
    assert [e["index"] for e in response.json()["errors"]] == [0]
    assert profile(sandbox, "external_id:u-1").status_code == 404
    assert profile(sandbox, "external_id:u-2").status_code == 200


def test_array_add_and_remove_keep_values_unique_in_the_profile(sandbox: SandboxServer) -> None:
    track(sandbox, {"attributes": [{"external_id": "u-1", "cohorts_in": ["a", "b", "a"]}]})
    track(
        sandbox,
        {
            "attributes": [
                {"external_id": "u-1", "cohorts_in": {"add": ["c", "a"], "remove": ["b"]}}
            ]
        },
    )
    track(sandbox, {"attributes": [{"external_id": "u-1", "cohorts_in": {"add": ["c"]}}]})

    attributes = profile(sandbox, "external_id:u-1").json()["attributes"]
    assert attributes["cohorts_in"] == ["a", "c"]


def test_null_value_removes_the_attribute(sandbox: SandboxServer) -> None:
    track(sandbox, {"attributes": [{"external_id": "u-1", "flag": True, "plan": "pro"}]})
    track(sandbox, {"attributes": [{"external_id": "u-1", "flag": None}]})

    assert profile(sandbox, "external_id:u-1").json()["attributes"] == {"plan": "pro"}


def test_update_existing_only_does_not_create_unknown_profiles(sandbox: SandboxServer) -> None:
    response = track(
        sandbox,
        {
            "attributes": [
                {"external_id": "ghost", "_update_existing_only": True, "flag": True},
                {"user_alias": {"alias_name": "dev-77", "alias_label": "device_id"}, "flag": True},
            ]
        },
    )

    assert response.status_code == 201
    assert response.json()["attributes_processed"] == 2
    assert profile(sandbox, "external_id:ghost").status_code == 404
    assert profile(sandbox, "alias:device_id:dev-77").status_code == 404
    skipped = control(sandbox, "braze/skipped")["skipped"]
    assert [item["identifier"] for item in skipped] == [
        "external_id:ghost",
        "alias:device_id:dev-77",
    ]


def test_alias_profile_is_created_only_when_update_existing_only_is_false(
    sandbox: SandboxServer,
) -> None:
    alias = {"alias_name": "dev-77", "alias_label": "device_id"}
    track(sandbox, {"attributes": [{"user_alias": alias, "_update_existing_only": False, "a": 1}]})
    track(sandbox, {"attributes": [{"user_alias": alias, "b": 2}]})

    assert profile(sandbox, "alias:device_id:dev-77").json()["attributes"] == {"a": 1, "b": 2}


def test_every_braze_response_carries_rate_limit_headers(sandbox: SandboxServer) -> None:
    control(sandbox, "faults", {"partner": "braze", "statuses": [503]})
    responses = [
        track(sandbox, {"attributes": [{"external_id": "u-1"}]}),  # injected 503
        track(sandbox, {"attributes": [{"external_id": "u-1"}]}),  # 201
        track(sandbox, {}),  # 400
        track(sandbox, {}, key="wrong"),  # 401
        requests.get(f"{sandbox.url}/users/nope", timeout=TIMEOUT),  # 404
    ]

    assert [r.status_code for r in responses] == [503, 201, 400, 401, 404]
    for response in responses:
        assert all(name in response.headers for name in RATE_HEADERS), response.headers
        assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time())
    assert responses[1].headers["X-RateLimit-Limit"] == "3000"


def test_exhausted_rate_limit_bucket_gets_429_without_retry_after(sandbox: SandboxServer) -> None:
    control(sandbox, "config", {"braze_rate_limit": 2, "braze_rate_window": 60})
    body = {"attributes": [{"external_id": "u-1"}]}

    statuses = [track(sandbox, body).status_code for _ in range(2)]
    limited = track(sandbox, body)

    assert statuses == [201, 201]
    assert limited.status_code == 429
    assert limited.json() == {"message": "Rate limit exceeded"}
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert limited.headers["X-RateLimit-Limit"] == "2"
    assert int(limited.headers["X-RateLimit-Reset"]) > time.time()
    assert "Retry-After" not in limited.headers


def test_injected_503s_are_served_in_order_then_requests_succeed(sandbox: SandboxServer) -> None:
    control(sandbox, "faults", {"partner": "braze", "statuses": [503, 502]})
    body = {"attributes": [{"external_id": "u-1", "plan": "pro"}]}

    statuses = [track(sandbox, body).status_code for _ in range(3)]

    assert statuses == [503, 502, 201]
    assert profile(sandbox, "external_id:u-1").json()["attributes"] == {"plan": "pro"}


def test_injected_latency_delays_partner_responses(sandbox: SandboxServer) -> None:
    control(sandbox, "faults", {"partner": "braze", "latency_ms": 150})

    started = time.monotonic()
    track(sandbox, {"attributes": [{"external_id": "u-1"}]})

    assert time.monotonic() - started >= 0.15


# AppsFlyer


def test_unknown_appsflyer_token_gets_403_forbidden(sandbox: SandboxServer) -> None:
    response = appsflyer(sandbox, f"{IMPORT_URL}/add", {}, token="bogus")

    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}


def test_revoked_appsflyer_token_gets_403(sandbox: SandboxServer) -> None:
    control(sandbox, "appsflyer/tokens", {"token": "fresh"})
    control(sandbox, "appsflyer/tokens/revoke", {"token": "fresh"})

    assert (
        appsflyer(sandbox, "/api/audiences-external-api/connections", token="fresh").status_code
        == 403
    )


def test_connections_get_is_the_cheap_authenticated_check(sandbox: SandboxServer) -> None:
    ok = appsflyer(sandbox, "/api/audiences-external-api/connections")
    bad = appsflyer(sandbox, "/api/audiences-external-api/connections", token="bogus")

    assert ok.status_code == 200
    assert ok.json() == {"connections": []}
    assert bad.status_code == 403
    assert bad.json() == {"message": "Forbidden"}


def test_audience_creation_returns_an_import_key_and_rejects_duplicate_names(
    sandbox: SandboxServer,
) -> None:
    url = "/api/audiences-external-api/audience"

    created = appsflyer(sandbox, url, {"audience_name": "Churn risk", "platform": "ios"})
    duplicate = appsflyer(sandbox, url, {"audience_name": "Churn risk", "platform": "ios"})
    bad_platform = appsflyer(sandbox, url, {"audience_name": "Other", "platform": "web"})

    assert created.status_code == 200
    message = created.json()["message"]
    assert isinstance(message["audience_id"], int)
    assert message["import_key"]
    assert duplicate.status_code == 400
    assert duplicate.json() == {"error_code": 1001, "message": "Audience name already exists"}
    assert bad_platform.status_code == 400
    assert bad_platform.json()["error_code"] == 1000
    audience = control(sandbox, f"appsflyer/audiences/{message['import_key']}")
    assert audience["name"] == "Churn risk"
    assert audience["platform"] == "ios"


def test_add_then_remove_updates_the_audience_members(sandbox: SandboxServer) -> None:
    import_key = new_audience(sandbox)
    body = {"import_key": import_key, "platform": "android"}

    added = appsflyer(sandbox, f"{IMPORT_URL}/add", {**body, "devices": devices(3)})
    appsflyer(sandbox, f"{IMPORT_URL}/add", {**body, "devices": devices(1)})
    removed = appsflyer(sandbox, f"{IMPORT_URL}/remove", {**body, "devices": devices(1)})

    assert added.status_code == 200
    assert added.json() == {"message": "The request was successful"}
    assert removed.status_code == 200
    members = control(sandbox, f"appsflyer/audiences/{import_key}")["members"]
    assert sorted(m["cuid"] for m in members) == ["u-1", "u-2"]


def test_more_devices_than_the_cap_gets_400_with_the_count(sandbox: SandboxServer) -> None:
    control(sandbox, "config", {"appsflyer_max_devices": 3})
    import_key = new_audience(sandbox)

    response = appsflyer(
        sandbox,
        f"{IMPORT_URL}/add",
        {"import_key": import_key, "platform": "android", "devices": devices(5)},
    )

    assert response.status_code == 400
    assert response.json() == {
        "message": "Cannot process more than 3 devices per request (5 counted)"
    }


def test_remove_row_with_two_identifiers_gets_400(sandbox: SandboxServer) -> None:
    import_key = new_audience(sandbox)
    row = {"app_id": "com.example.app", "cuid": "u-1", "gaid": "3f0b6c1e"}

    response = appsflyer(
        sandbox,
        f"{IMPORT_URL}/remove",
        {"import_key": import_key, "platform": "android", "devices": [row]},
    )

    assert response.status_code == 400
    assert "more than one identifier" in response.json()["message"]


def test_rows_lacking_app_id_or_a_platform_identifier_get_400(sandbox: SandboxServer) -> None:
    import_key = new_audience(sandbox, platform="ios")
    body = {"import_key": import_key, "platform": "ios"}

    no_app_id = appsflyer(sandbox, f"{IMPORT_URL}/add", {**body, "devices": [{"cuid": "u-1"}]})
    gaid_on_ios = appsflyer(
        sandbox, f"{IMPORT_URL}/add", {**body, "devices": devices(2, field="gaid")}
    )
    empty = appsflyer(sandbox, f"{IMPORT_URL}/add", {**body, "devices": []})

    assert no_app_id.status_code == 400
    assert no_app_id.json()["message"] == "1 rows are missing app_id"
    assert gaid_on_ios.status_code == 400
    assert gaid_on_ios.json()["message"].startswith("2 rows are missing a valid unique identifier")
    assert empty.status_code == 400
    assert control(sandbox, f"appsflyer/audiences/{import_key}")["members"] == []


def test_platform_mismatch_and_unknown_import_key_get_400(sandbox: SandboxServer) -> None:
    import_key = new_audience(sandbox, platform="android")

    mismatch = appsflyer(
        sandbox,
        f"{IMPORT_URL}/add",
        {"import_key": import_key, "platform": "ios", "devices": devices(1)},
    )
    unknown = appsflyer(
        sandbox,
        f"{IMPORT_URL}/add",
        {"import_key": "nope", "platform": "android", "devices": devices(1)},
    )

    assert mismatch.status_code == 400
    assert "already configured for platform android" in mismatch.json()["message"]
    assert unknown.status_code == 400
    assert "import_key" in unknown.json()["message"]


def test_injected_appsflyer_429_says_too_many_requests_without_rate_headers(
    sandbox: SandboxServer,
) -> None:
    control(sandbox, "faults", {"partner": "appsflyer", "statuses": [429]})

    limited = appsflyer(sandbox, "/api/audiences-external-api/connections")
    after = appsflyer(sandbox, "/api/audiences-external-api/connections")

    assert limited.status_code == 429
    assert limited.json() == {"message": "Too many requests"}
    assert not any(name in limited.headers for name in RATE_HEADERS)
    assert after.status_code == 200


# Server and control API


def test_session_reuses_one_keep_alive_connection(sandbox: SandboxServer) -> None:
    with requests.Session() as session:
        first = session.get(f"{sandbox.url}/_sandbox/health", timeout=TIMEOUT)
        second = session.post(
            f"{sandbox.url}/users/track",
            json={"attributes": [{"external_id": "u-1"}]},
            headers={"Authorization": f"Bearer {DEMO_BRAZE_KEY}"},
            timeout=TIMEOUT,
        )
        stats = session.get(f"{sandbox.url}/_sandbox/stats", timeout=TIMEOUT).json()

    assert first.status_code == 200
    assert second.status_code == 201
    assert stats["connections"] == 1


def test_unknown_path_gets_404_json(sandbox: SandboxServer) -> None:
    response = requests.get(f"{sandbox.url}/nowhere", timeout=TIMEOUT)

    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}


def test_body_over_10_mb_gets_413(sandbox: SandboxServer) -> None:
    # A raw socket: the oversized body is announced but never sent.
    with socket.create_connection((sandbox.host, sandbox.port), timeout=TIMEOUT) as conn:
        conn.sendall(
            b"POST /users/track HTTP/1.1\r\nHost: sandbox\r\n"
            b"Content-Length: 10485761\r\nContent-Type: application/json\r\n\r\n"
        )
        status_line = conn.makefile("rb").readline()

    assert status_line.split()[1] == b"413"


def test_stats_count_partner_requests_per_endpoint_and_status(sandbox: SandboxServer) -> None:
    track(sandbox, {"attributes": [{"external_id": "u-1"}]})
    track(sandbox, {"attributes": [{"external_id": "u-1"}]})
    track(sandbox, {}, key="wrong")

    requests_seen = control(sandbox, "stats")["requests"]

    assert requests_seen["POST /users/track"] == {"201": 2, "401": 1}


def test_reset_forgets_data_and_restores_demo_credentials(sandbox: SandboxServer) -> None:
    control(sandbox, "braze/keys/revoke", {"key": DEMO_BRAZE_KEY})
    control(sandbox, "config", {"braze_object_cap": 1})

    control(sandbox, "reset", {})

    assert control(sandbox, "config")["braze_object_cap"] == 75
    assert track(sandbox, {"attributes": [{"external_id": "u-1"}] * 2}).status_code == 201


def test_control_api_rejects_bad_input_with_400(sandbox: SandboxServer) -> None:
    bad_partner = requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"partner": "mixpanel"}, timeout=TIMEOUT
    )
    bad_config = requests.post(
        f"{sandbox.url}/_sandbox/config", json={"braze_rate_limit": 0}, timeout=TIMEOUT
    )

    assert bad_partner.status_code == 400
    assert bad_config.status_code == 400

"""AppsFlyer.send_batch and create_audience: exact import bodies, and the simulator over HTTP."""

from collections.abc import Sequence
from typing import Any

import pytest
import requests

from connections.partners.appsflyer import AppsFlyer
from connections.partners.appsflyer.config import AppsFlyerConfig
from connections.partners.appsflyer.payload import device_limit, device_rows, import_payload
from connections.partners.base import BatchResult, Recipient
from connections.partners.http import BatchTooLarge, PartnerError
from connections.sandbox import DEMO_APPSFLYER_TOKEN

APP_ID = "com.example.app"
IMPORT_KEY = "EXAMPLEIMPORTKEY0001"


def _appsflyer(
    url: str, secret: str = DEMO_APPSFLYER_TOKEN, platform: str = "android", **config: Any
) -> AppsFlyer:
    app_id = APP_ID if platform == "android" else "id123456789"
    return AppsFlyer(
        AppsFlyerConfig(app_id=app_id, platform=platform, api_host=url, **config), secret
    )


def _device(ref: int, identifier_type: str = "gaid", value: str | None = None) -> Recipient:
    return Recipient(ref=ref, identifier_type=identifier_type, identifier=value or f"dev-{ref}")


def _sandbox_post(sandbox: Any, route: str, body: dict[str, Any]) -> Any:
    response = requests.post(f"{sandbox.url}/_sandbox/{route}", json=body, timeout=5)
    response.raise_for_status()
    return response.json()


def _seed_audience(sandbox: Any, platform: str = "android", name: str = "Churn risk") -> str:
    body = {"name": name, "platform": platform, "import_key": f"{platform}-{IMPORT_KEY}"}
    import_key: str = _sandbox_post(sandbox, "appsflyer/audiences", body)["import_key"]
    return import_key


def _members(sandbox: Any, import_key: str) -> list[dict[str, str]]:
    response = requests.get(f"{sandbox.url}/_sandbox/appsflyer/audiences/{import_key}", timeout=5)
    response.raise_for_status()
    members: list[dict[str, str]] = response.json()["members"]
    return members


def _requests_seen(sandbox: Any) -> int:
    counts = requests.get(f"{sandbox.url}/_sandbox/stats", timeout=5).json()["requests"]
    return sum(sum(per_status.values()) for per_status in counts.values())


def _send(
    appsflyer: AppsFlyer,
    import_key: str,
    add: Sequence[Recipient] = (),
    remove: Sequence[Recipient] = (),
) -> BatchResult:
    return appsflyer.send_batch(
        cohort_label="churn_risk", add=add, remove=remove, options={"import_key": import_key}
    )


# The exact payload, no HTTP.


def test_add_payload_is_one_device_per_recipient_with_the_app_id() -> None:
    rows = device_rows(
        [_device(1, "gaid", "3f0b6c1e"), _device(2, "external_id", "u-1001")],
        app_id=APP_ID,
        platform="android",
    )
    assert (rows.refs, rows.refused) == ([1, 2], [])
    assert import_payload(import_key=IMPORT_KEY, platform="android", devices=rows.devices) == {
        "import_key": IMPORT_KEY,
        "platform": "android",
        "devices": [
            {"app_id": APP_ID, "gaid": "3f0b6c1e"},
            {"app_id": APP_ID, "cuid": "u-1001"},
        ],
    }


def test_remove_payload_carries_exactly_one_identifier_per_device() -> None:
    rows = device_rows(
        [_device(1, "idfv", "A1B2"), _device(2, "braze_id", "5f2a0c"), _device(3, "amplitude_id")],
        app_id="id123456789",
        platform="ios",
    )
    assert import_payload(import_key=IMPORT_KEY, platform="ios", devices=rows.devices) == {
        "import_key": IMPORT_KEY,
        "platform": "ios",
        "devices": [
            {"app_id": "id123456789", "idfv": "A1B2"},
            {"app_id": "id123456789", "braze_id": "5f2a0c"},
            {"app_id": "id123456789", "amplitude_id": "dev-3"},
        ],
    }


def test_identifiers_the_platform_refuses_are_failed_with_a_reason() -> None:
    rows = device_rows(
        [_device(1, "idfv"), _device(2, "gaid"), _device(3, "email"), _device(4, "oaid", " ")],
        app_id=APP_ID,
        platform="android",
    )
    assert rows.refs == [2]
    reasons = dict(rows.refused)
    assert sorted(reasons) == [1, 3, 4]
    assert "android" in reasons[1] and "idfv" in reasons[1]
    assert "'email'" in reasons[3]
    assert "empty" in reasons[4]


def test_the_device_limit_is_read_from_appsflyers_message() -> None:
    assert device_limit("Cannot process more than 2500 devices per request (4000 counted)") == 2500
    assert device_limit("The device list is empty") is None


# The simulator over real HTTP.


def test_add_then_remove_leaves_the_audience_without_the_device(sandbox: Any) -> None:
    import_key = _seed_audience(sandbox)
    appsflyer = _appsflyer(sandbox.url)
    added = _send(appsflyer, import_key, add=[_device(1), _device(2)])
    assert (added.accepted, added.failed, added.requests, added.status) == ([1, 2], [], 1, 200)
    assert _members(sandbox, import_key) == [
        {"app_id": APP_ID, "gaid": "dev-1"},
        {"app_id": APP_ID, "gaid": "dev-2"},
    ]

    removed = _send(appsflyer, import_key, remove=[_device(1)])
    assert (removed.accepted, removed.requests) == ([1], 1)
    assert _members(sandbox, import_key) == [{"app_id": APP_ID, "gaid": "dev-2"}]


def test_a_batch_with_adds_and_removes_makes_two_requests(sandbox: Any) -> None:
    import_key = _seed_audience(sandbox)
    appsflyer = _appsflyer(sandbox.url)
    _send(appsflyer, import_key, add=[_device(1)])
    result = _send(appsflyer, import_key, add=[_device(2)], remove=[_device(1)])
    assert (result.accepted, result.requests, result.status) == ([2, 1], 2, 200)
    assert _members(sandbox, import_key) == [{"app_id": APP_ID, "gaid": "dev-2"}]


def test_an_external_id_is_sent_as_the_customer_user_id(sandbox: Any) -> None:
    import_key = _seed_audience(sandbox, platform="ios")
    result = _send(
        _appsflyer(sandbox.url, platform="ios"),
        import_key,
        add=[_device(7, "external_id", "u-1001")],
    )
    assert result.accepted == [7]
    assert _members(sandbox, import_key) == [{"app_id": "id123456789", "cuid": "u-1001"}]


def test_a_refused_identifier_fails_only_its_ref_and_is_never_sent(sandbox: Any) -> None:
    import_key = _seed_audience(sandbox, platform="ios")
    appsflyer = _appsflyer(sandbox.url, platform="ios")
    result = _send(appsflyer, import_key, add=[_device(1, "gaid"), _device(2, "idfv")])
    assert result.accepted == [2] and result.requests == 1
    assert [ref for ref, _ in result.failed] == [1]
    assert "gaid" in result.failed[0][1]
    assert _members(sandbox, import_key) == [{"app_id": "id123456789", "idfv": "dev-2"}]

    # With nothing the platform accepts, no request goes out at all.
    before = _requests_seen(sandbox)
    only_refused = _send(appsflyer, import_key, remove=[_device(3, "oaid")])
    assert (only_refused.accepted, only_refused.requests, only_refused.status) == ([], 0, 0)
    assert [ref for ref, _ in only_refused.failed] == [3]
    assert _requests_seen(sandbox) == before


def test_a_missing_import_key_is_refused_before_any_request(sandbox: Any) -> None:
    appsflyer = _appsflyer(sandbox.url)
    before = _requests_seen(sandbox)
    with pytest.raises(ValueError, match="import_key"):
        appsflyer.send_batch(cohort_label="x", add=[_device(1)], remove=[], options={})
    assert _requests_seen(sandbox) == before


def test_max_batch_size_is_the_configured_batch_size(sandbox: Any) -> None:
    appsflyer = _appsflyer(sandbox.url, batch_size=3)
    assert appsflyer.max_batch_size() == 3
    with pytest.raises(ValueError, match="4 recipients"):
        _send(appsflyer, _seed_audience(sandbox), add=[_device(n) for n in range(4)])


def test_too_many_devices_raises_batch_too_large_with_appsflyers_limit(sandbox: Any) -> None:
    _sandbox_post(sandbox, "config", {"appsflyer_max_devices": 2})
    import_key = _seed_audience(sandbox)
    with pytest.raises(BatchTooLarge) as caught:
        _send(_appsflyer(sandbox.url), import_key, add=[_device(n) for n in range(3)])
    error = caught.value
    assert isinstance(error, PartnerError)
    assert (error.limit, error.status, error.retryable, error.auth) == (2, 400, False, False)
    assert "Cannot process more than 2 devices" in error.message
    assert _members(sandbox, import_key) == []


def test_another_400_is_a_plain_error_with_appsflyers_message(sandbox: Any) -> None:
    with pytest.raises(PartnerError) as caught:
        _send(_appsflyer(sandbox.url), "no-such-audience", add=[_device(1)])
    error = caught.value
    assert not isinstance(error, BatchTooLarge)
    assert (error.status, error.retryable, error.auth) == (400, False, False)
    assert error.message == "No audience matches this import_key"


def test_a_refused_token_is_an_auth_error_that_does_not_contain_the_token(sandbox: Any) -> None:
    secret = "appsflyer-token-nobody-knows-0000"
    with pytest.raises(PartnerError) as caught:
        _send(_appsflyer(sandbox.url, secret=secret), _seed_audience(sandbox), add=[_device(1)])
    error = caught.value
    assert error.auth and not error.retryable and error.status == 403
    assert secret not in str(error) and secret not in repr(error.body)


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_are_retryable(sandbox: Any, status: int) -> None:
    import_key = _seed_audience(sandbox)
    _sandbox_post(sandbox, "faults", {"partner": "appsflyer", "statuses": [status]})
    with pytest.raises(PartnerError) as caught:
        _send(_appsflyer(sandbox.url), import_key, add=[_device(1)])
    error = caught.value
    assert error.status == status and error.retryable and not error.auth
    # AppsFlyer documents no rate-limit headers, so there is no reset to wait for.
    assert error.rate_limit is None


def test_create_audience_returns_an_import_key_that_add_accepts(sandbox: Any) -> None:
    appsflyer = _appsflyer(sandbox.url)
    import_key = appsflyer.create_audience(name="Churn risk Q3")
    assert _send(appsflyer, import_key, add=[_device(1)]).accepted == [1]
    audience = requests.get(
        f"{sandbox.url}/_sandbox/appsflyer/audiences/{import_key}", timeout=5
    ).json()
    assert (audience["name"], audience["platform"], audience["member_count"]) == (
        "Churn risk Q3",
        "android",
        1,
    )


def test_create_audience_cuts_a_long_name_to_appsflyers_100_characters(sandbox: Any) -> None:
    import_key = _appsflyer(sandbox.url).create_audience(name="n" * 150)
    audience = requests.get(
        f"{sandbox.url}/_sandbox/appsflyer/audiences/{import_key}", timeout=5
    ).json()
    assert audience["name"] == "n" * 100


def test_create_audience_refuses_a_name_that_already_exists(sandbox: Any) -> None:
    appsflyer = _appsflyer(sandbox.url)
    appsflyer.create_audience(name="Churn risk")
    with pytest.raises(PartnerError) as caught:
        appsflyer.create_audience(name="Churn risk")
    error = caught.value
    assert not error.retryable and not error.auth and error.status == 400
    assert error.message.startswith("An AppsFlyer audience named 'Churn risk' already exists")


def test_create_audience_with_a_refused_token_is_an_auth_error(sandbox: Any) -> None:
    secret = "appsflyer-token-nobody-knows-0001"
    with pytest.raises(PartnerError) as caught:
        _appsflyer(sandbox.url, secret=secret).create_audience(name="Churn risk")
    assert caught.value.auth and caught.value.status == 403
    assert secret not in str(caught.value)

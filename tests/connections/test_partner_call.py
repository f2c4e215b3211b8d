"""connections/partners/http.py `call()` on the urllib3 client: what a caller sees of an answer,
a refusal or no answer at all is what it saw through requests (PartnerResponse, the classified
PartnerError and its message, the exchange noted), over real sockets on the loopback."""

import json
import socket

import pytest

from connections.partners.exchanges import recording
from connections.partners.http import InvalidJSONError, PartnerError, _json_body, call
from core.egress_client import EgressClient
from tests.egress_servers import AnswerServer, servers

SECRET = "braze-rest-key-7777-abcd"


@pytest.fixture(autouse=True)
def _loopback_over_http(settings):
    settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = True  # the loopback, over plain http
    settings.COHORTSYNC_EGRESS_ALLOW = []


def test_an_answer_comes_back_decoded_with_its_headers_lowercased_and_is_noted():
    server = AnswerServer(
        201, headers={"X-RateLimit-Remaining": "7"}, body={"message": "success"}, tls=False
    )
    with servers(server), EgressClient() as client, recording() as noted:
        response = call(
            "POST", f"{server.url}/users/track", secret=SECRET, payload={"a": [1]}, client=client
        )
    assert (response.status, response.body) == (201, {"message": "success"})
    assert response.headers["x-ratelimit-remaining"] == "7"
    [sent] = server.received
    assert sent["Authorization"] == f"Bearer {SECRET}"
    assert sent["Content-Type"] == "application/json"
    assert sent["Accept"] == "application/json"
    [exchange] = noted
    assert (exchange.status, exchange.answer, exchange.request) == (
        201,
        {"message": "success"},
        {"a": [1]},
    )


def test_a_get_without_a_client_sends_no_body_and_another_authorization():
    server = AnswerServer(200, body={"ok": True}, tls=False)
    with servers(server):
        response = call("GET", f"{server.url}/export", secret=SECRET, authorization="Basic abc")
    assert response.body == {"ok": True}
    [sent] = server.received
    assert sent["Authorization"] == "Basic abc"
    assert "Content-Type" not in sent


def test_an_answer_that_is_not_json_is_an_empty_body_and_its_text_is_noted():
    server = AnswerServer(502, body="<html>Bad gateway</html>", tls=False)
    with servers(server), recording() as noted, pytest.raises(PartnerError) as refused:
        call("POST", f"{server.url}/users/track", secret=SECRET, payload={})
    assert refused.value.message == "HTTP 502 Bad Gateway"  # the status line's reason
    assert refused.value.retryable and not refused.value.unreachable
    assert refused.value.body == {}
    assert noted[0].answer == "<html>Bad gateway</html>"


def test_a_refusal_keeps_the_partners_message_without_the_secret():
    server = AnswerServer(401, body={"message": f"Invalid API key: {SECRET}"}, tls=False)
    with servers(server), pytest.raises(PartnerError) as refused:
        call("POST", f"{server.url}/users/track", secret=SECRET, payload={})
    assert refused.value.message == "Invalid API key: ••••"
    assert refused.value.auth and not refused.value.retryable


def test_no_answer_is_a_retryable_failure_named_as_before_and_noted():
    with socket.socket() as silent:  # connects, then never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        host = f"127.0.0.1:{silent.getsockname()[1]}"
        with recording() as noted, pytest.raises(PartnerError) as failed:
            call(
                "POST", f"http://{host}/users/track", secret=SECRET, payload={}, timeout=(5.0, 0.2)
            )
    assert failed.value.message == f"Could not reach {host} (ReadTimeout)"
    assert failed.value.retryable and failed.value.unreachable
    assert (noted[0].status, noted[0].note) == (None, failed.value.message)


def test_a_payload_that_is_not_json_sends_nothing():
    server = AnswerServer(200, tls=False)
    with servers(server), pytest.raises(PartnerError, match=r"\(InvalidJSONError\)"):
        call("POST", f"{server.url}/users/track", secret=SECRET, payload={"score": float("nan")})
    assert server.requests == []


@pytest.mark.parametrize(
    "payload",
    [
        {"attributes": [{"external_id": "u1", "_update_existing_only": True, "a": {"add": ["x"]}}]},
        {"attributes": [{"external_id": "u1", "rank": None}]},  # a trait removed: null, sent
        {"attributes": [{"external_id": "null"}]},  # "null" in a value: the strict way, same JSON
        {1: "an integer key, as the json module writes it", "big": 2**70},
    ],
)
def test_a_body_is_the_json_of_its_payload(payload):
    assert json.loads(_json_body(payload)) == json.loads(json.dumps(payload))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_body_never_sends_nan_or_infinity_as_null(value):
    with pytest.raises(InvalidJSONError):
        _json_body({"attributes": [{"external_id": "u1", "score": value}]})

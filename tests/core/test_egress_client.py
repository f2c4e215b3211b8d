"""core/egress_client.py: the urllib3 client partner calls go through keeps every guarantee of
the egress policy (core/egress.py), over real sockets, with production settings: refusals before
any packet leaves, no redirect followed, no proxy or ~/.netrc from the environment, the CA
bundle read once, failures named as requests named them, and one client shared by threads.

Every test runs under a tripwire that fails it on a connect off the loopback.
"""

import http.client
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from core import egress
from core.egress_client import EgressClient, failure_name
from tests.egress_servers import AnswerServer, Listener, servers, tls_files

pytestmark = pytest.mark.usefixtures("egress_in_production")

TIMEOUT = (5.0, 5.0)
JSON = {"Content-Type": "application/json"}


@contextmanager
def silent_listener(backlog: int) -> Iterator[int]:
    """A port whose listener never accepts: the kernel completes up to `backlog` + 1 handshakes
    (requests sent there wait for an answer that never comes), then drops further SYNs (a
    connect waits for a handshake that never completes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(backlog)
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:{port}/users/track",
        "https://localhost:{port}/users/track",
        "https://[::ffff:127.0.0.1]:{port}/",
        "https://0x7f000001:{port}/",
        "http://127.0.0.1:{port}/",  # refused for its scheme before its address
    ],
)
def test_a_private_address_is_refused_before_any_packet_leaves(internal, url):
    with EgressClient() as client, pytest.raises(egress.EgressRefused):
        client.request(
            "POST", url.format(port=internal.port), headers=JSON, body=b"{}", timeout=TIMEOUT
        )
    assert internal.accepted == 0


def test_the_address_a_name_resolves_to_when_it_connects_is_checked(internal, dns):
    # Public when saved, then one private answer among public ones: a rebinding.
    dns({"partner.test": ["93.184.216.34"]})
    url = f"https://partner.test:{internal.port}/users/track"
    egress.check_url(url, resolve_now=True)
    dns({"partner.test": ["93.184.216.34", "127.0.0.1"]})
    refused = pytest.raises(egress.EgressRefused, match=r"partner.test is 127.0.0.1")
    with EgressClient() as client, refused:
        client.request("POST", url, headers=JSON, body=b"{}", timeout=TIMEOUT)
    assert internal.accepted == 0


@pytest.mark.usefixtures("trusted_tls")
def test_a_redirect_is_the_answer_not_a_place_to_go(settings, internal):
    location = f"https://127.0.0.1:{internal.port}/"
    server = AnswerServer(307, headers={"Location": location})
    settings.COHORTSYNC_EGRESS_ALLOW = ["localhost"]
    with servers(server), EgressClient() as client:
        response = client.request(
            "POST", f"{server.url}/users/track", headers=JSON, body=b"{}", timeout=TIMEOUT
        )
    assert response.status == 307
    assert response.headers["Location"] == location
    assert server.requests == ["POST /users/track"]
    assert internal.accepted == 0


@pytest.mark.parametrize("tls", [True, False])
def test_no_proxy_from_the_environment_is_used(settings, monkeypatch, internal, tls):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_files()[0])
    settings.COHORTSYNC_EGRESS_ALLOW = ["localhost"]
    settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = not tls
    for name in (
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.setenv(name, f"http://127.0.0.1:{internal.port}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    server = AnswerServer(200, body={"ok": True}, tls=tls)
    with servers(server), EgressClient() as client:
        response = client.request("GET", f"{server.url}/", headers={}, timeout=TIMEOUT)
    assert response.json() == {"ok": True}
    assert server.requests == ["GET /"]
    assert internal.accepted == 0


@pytest.mark.usefixtures("trusted_tls")
def test_a_netrc_never_adds_credentials(settings, monkeypatch, tmp_path):
    netrc = "machine localhost login leaked password secret\n"
    (tmp_path / ".netrc").write_text(netrc)
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    settings.COHORTSYNC_EGRESS_ALLOW = ["localhost"]
    server = AnswerServer(200)
    with servers(server), EgressClient() as client:
        client.request("GET", f"{server.url}/", headers={}, timeout=TIMEOUT)
    [received] = server.received
    assert "Authorization" not in received
    assert "leaked" not in str(received)


def test_tls_trusts_the_environments_ca_bundle_read_once_and_verifies_the_name(
    settings, monkeypatch, dns
):
    settings.COHORTSYNC_EGRESS_ALLOW = ["partner.test", "other.test"]
    dns({"partner.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    server = AnswerServer(200, body={"ok": True})
    with servers(server):
        with EgressClient() as client, pytest.raises(Exception) as untrusted:
            client.request(
                "GET", f"https://partner.test:{server.port}/", headers={}, timeout=TIMEOUT
            )
        assert failure_name(untrusted.value) == "SSLError"
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls_files()[0])
        with EgressClient() as client:
            monkeypatch.delenv("REQUESTS_CA_BUNDLE")  # read when the client was made
            url = f"https://partner.test:{server.port}/"
            assert client.request("GET", url, headers={}, timeout=TIMEOUT).json() == {"ok": True}
            # The same address under a name the certificate does not carry.
            with pytest.raises(Exception) as misnamed:
                client.request(
                    "GET", f"https://other.test:{server.port}/", headers={}, timeout=TIMEOUT
                )
            assert failure_name(misnamed.value) == "SSLError"
    assert server.requests == ["GET /"]


def _failure(url: str, timeout: tuple[float, float] = TIMEOUT) -> str:
    with EgressClient() as client, pytest.raises(Exception) as failed:
        client.request("POST", url, headers=JSON, body=b"{}", timeout=timeout)
    return failure_name(failed.value)


def test_failures_are_named_as_requests_named_them(settings):
    settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = True  # the loopback, over plain http
    with silent_listener(backlog=8) as port:  # connects, then no answer
        assert _failure(f"http://127.0.0.1:{port}/", timeout=(5.0, 0.2)) == "ReadTimeout"
    # The first connection fills the queue: the next one's handshake never completes.
    with silent_listener(backlog=0) as port, socket.create_connection(("127.0.0.1", port)):
        assert _failure(f"http://127.0.0.1:{port}/", timeout=(0.2, 5.0)) == "ConnectTimeout"
    closing = Listener()  # accepts and hangs up
    with servers(closing):
        assert _failure(f"http://127.0.0.1:{closing.port}/") == "ConnectionError"
    with silent_listener(backlog=1) as port:
        pass  # closed: nothing listens there any more
    assert _failure(f"http://127.0.0.1:{port}/") == "ConnectionError"


def test_one_client_serves_many_threads_at_once_on_kept_connections(settings):
    settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = True
    threads, each = 16, 25
    # Each thread's first request is answered only once all of them have arrived: the client
    # then has `threads` requests open at once, on as many connections.
    all_open = threading.Barrier(threads, timeout=10)

    def echo(path: str) -> dict[str, str]:
        if path.endswith("/0"):
            all_open.wait()
        return {"path": path}

    server = AnswerServer(200, body=echo, tls=False, keep_alive=True)

    def send(thread: int) -> list[bool]:
        paths = [f"/users/track/{thread}/{n}" for n in range(each)]
        answers = [
            client.request("POST", f"{server.url}{path}", headers=JSON, body=b"{}", timeout=TIMEOUT)
            for path in paths
        ]
        return [
            a.status == 200 and a.json() == {"path": p} for a, p in zip(answers, paths, strict=True)
        ]

    with servers(server), EgressClient() as client, ThreadPoolExecutor(threads) as pool:
        results = [ok for answers in pool.map(send, range(threads)) for ok in answers]
    assert results == [True] * threads * each  # every thread got its own answers
    assert len(server.requests) == threads * each
    # Connections are kept and reused: one per request open at once, not one per request.
    assert len(server.connections) == threads


def test_a_bytes_body_goes_out_with_its_header_block_in_one_send(settings, monkeypatch):
    """One system call a request, not two: each gives up the interpreter to the sending
    threads around it (core/egress_http.py, _OneSend)."""
    settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = True
    sent: list[bytes] = []
    real_send = http.client.HTTPConnection.send

    def recording_send(connection, data):
        sent.append(bytes(data))
        return real_send(connection, data)

    monkeypatch.setattr(http.client.HTTPConnection, "send", recording_send)
    server = AnswerServer(200, body=lambda path: {"path": path}, tls=False, keep_alive=True)
    body = (
        b'{"attributes": [' + b", ".join(b'{"external_id": "u%d"}' % n for n in range(75)) + b"]}"
    )
    with servers(server), EgressClient() as client:
        posted = [
            client.request(
                "POST", f"{server.url}/track/{n}", headers=JSON, body=body, timeout=TIMEOUT
            )
            for n in range(2)
        ]
        got = client.request("GET", f"{server.url}/export", headers={}, timeout=TIMEOUT)

    assert [answer.json() for answer in [*posted, got]] == [
        {"path": "/track/0"},
        {"path": "/track/1"},
        {"path": "/export"},
    ]
    assert len(server.connections) == 1  # kept: each body was read whole, nothing more
    assert len(sent) == 3
    for data, path in zip(sent[:2], ["/track/0", "/track/1"], strict=True):
        assert data.startswith(f"POST {path} HTTP/1.1\r\n".encode())
        assert data.endswith(b"\r\n\r\n" + body)
    assert sent[2].startswith(b"GET /export HTTP/1.1\r\n") and sent[2].endswith(b"\r\n\r\n")

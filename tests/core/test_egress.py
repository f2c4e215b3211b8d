"""The egress policy (core/egress.py, invariant 10 in docs/architecture.md), with production
settings: what it refuses in every notation, what it lets through, and, over real sockets, that
an internal service hears nothing, that the socket goes to the address that was checked, and
that no redirect or environment proxy takes a call elsewhere.

The resolver function of core/egress.py (`egress.resolve`) is the one seam: tests replace it to
play DNS answers. Every test runs under a tripwire that fails it on a connect off loopback.
"""

import pytest
import requests

from core import egress, egress_http
from tests.egress_servers import (
    AnswerServer,
    Listener,
    ipv6_loopback,
    servers,
)

pytestmark = pytest.mark.usefixtures("egress_in_production")

# Issue #13's list, and more notations of the same places.
REFUSED = [
    ("https://127.0.0.1:6379", "127.0.0.1 is a loopback address"),
    ("https://169.254.169.254", "cloud metadata"),
    ("https://10.0.0.1:8443", "10.0.0.1 is a private address"),
    ("https://[::1]", "::1 is a loopback address"),
    ("https://0x7f000001", "0x7f000001 is 127.0.0.1, a loopback address"),
    ("https://2130706433", "2130706433 is 127.0.0.1, a loopback address"),
    ("https://[::ffff:127.0.0.1]", "is 127.0.0.1, a loopback address"),
    ("https://[fd00::1]", "fd00::1 is a private address"),
    ("https://metadata.google.internal", "cloud metadata"),
    ("https://localhost", "localhost is 127.0.0.1, a loopback address"),
    ("https://127.1", "127.1 is 127.0.0.1, a loopback address"),
    ("https://0177.0.0.1", "0177.0.0.1 is 127.0.0.1"),
    ("https://0", "0.0.0.0, an unspecified address"),
    ("https://[::]", "an unspecified address"),
    ("https://LocalHost.:443", "localhost is 127.0.0.1"),
    ("https://api.localhost", "a loopback address"),
    ("https://%31%32%37.0.0.1", "127.0.0.1 is a loopback address"),
    ("https://192.168.1.10", "a private address"),
    ("https://172.16.0.1", "a private address"),
    ("https://100.64.0.1", "a special-purpose address"),
    ("https://169.254.10.1", "a link-local address"),
    ("https://[fe80::1]", "a link-local address"),
    ("https://[fe80::1%25eth0]", "a link-local address"),
    ("https://224.0.0.1", "a multicast address"),
    ("https://[ff02::1]", "a multicast address"),
    ("https://240.0.0.1", "240.0.0.1 is a reserved address"),
    ("https://255.255.255.255", "address"),
    ("https://[fd00:ec2::254]", "cloud metadata"),
    ("https://100.100.100.200", "cloud metadata"),
    ("https://[::ffff:169.254.169.254]", "cloud metadata"),
    ("https://[::ffff:a9fe:a9fe]", "cloud metadata"),
    ("https://[::ffff:0:7f00:1]", "is 127.0.0.1, a loopback address"),  # IPv4-translated
    ("https://[64:ff9b::a00:1]", "is 10.0.0.1, a private address"),  # NAT64
    ("https://[2002:7f00:1::]", "6to4 or Teredo"),
    ("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]", "6to4 or Teredo"),
    ("https://[fec0::1]", "a site-local address"),
    ("https://metadata.goog", "cloud metadata"),
    ("http://example.com", "must use https"),
    ("ftp://example.com", "must use https"),
]
PUBLIC = [
    "https://rest.iad-01.braze.com",
    "https://8.8.8.8",
    "https://134744072",  # 8.8.8.8 as one number: a notation is not a fault
    "https://[2606:4700:4700::1111]",
    "https://[64:ff9b::808:808]",  # NAT64 of a public address
]


@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("fd12::1", "private"),
    ("169.254.169.254", "metadata"),
    ("169.254.1.1", "link-local"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:0:a00:1", "private"),
    ("64:ff9b::7f00:1", "loopback"),
    ("2002:a00:1::", "tunnel"),
    ("0.0.0.0", "unspecified"),  # noqa: S104 -- a value under test
    ("239.1.1.1", "multicast"),
    ("198.51.100.7", "private"),  # documentation range
    ("100.64.0.1", "special"),
    ("8.8.8.8", None),
    ("2606:4700:4700::1111", None),
])  # fmt: skip
def test_each_address_gets_its_fault(address, kind):
    import ipaddress

    assert egress.fault(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(("url", "message"), REFUSED)
def test_every_notation_is_refused_without_a_dns_query(monkeypatch, url, message):
    monkeypatch.setattr(egress, "resolve", lambda *a: pytest.fail("no DNS query without resolve"))
    with pytest.raises(egress.EgressRefused) as refused:
        egress.check_url(url)
    assert message in str(refused.value)


@pytest.mark.parametrize("url", PUBLIC)
def test_public_addresses_and_names_pass(url):
    egress.check_url(url)


def test_development_mode_allows_http_loopback_and_private_but_never_metadata(settings):
    settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS = True
    allowed = ("http://127.0.0.1:8765", "http://localhost:8765", "https://10.0.0.1:8443",
               "http://[::1]:8765", "https://[::ffff:127.0.0.1]", "https://[fd00::1]")  # fmt: skip
    for url in allowed:
        egress.check_url(url)
    for url in ("http://169.254.169.254", "http://[fd00:ec2::254]", "http://metadata.google.internal",
                "http://169.254.1.1", "http://224.0.0.1", "ftp://127.0.0.1"):  # fmt: skip
        with pytest.raises(egress.EgressRefused):
            egress.check_url(url)


def test_the_allow_list_lets_a_private_network_or_host_through_but_never_metadata(settings):
    settings.COHORTSYNC_EGRESS_ALLOW = ["10.20.0.0/16", "proxy.corp.example", "fd00::/8"]
    egress.check_url("https://10.20.3.4:8443")
    egress.check_url("https://[::ffff:10.20.3.4]")
    egress.check_url("https://[fd00::1]")
    egress.check_url("https://Proxy.Corp.Example.")
    with pytest.raises(egress.EgressRefused, match=r"10.21.0.1 is a private address"):
        egress.check_url("https://10.21.0.1")
    with pytest.raises(egress.EgressRefused, match="must use https"):
        egress.check_url("http://10.20.3.4")  # the allow-list is about addresses, not http
    settings.COHORTSYNC_EGRESS_ALLOW = ["169.254.0.0/16", "metadata.google.internal"]
    egress.check_url("https://169.254.10.1")
    for url in ("https://169.254.169.254", "https://metadata.google.internal"):
        with pytest.raises(egress.EgressRefused, match="cloud metadata"):
            egress.check_url(url)


def test_a_bad_allow_list_entry_fails_the_system_check(settings):
    settings.COHORTSYNC_EGRESS_ALLOW = ["10.0.0.0/33"]
    [error] = egress.check_settings()
    assert error.id == "core.E001"
    assert "'10.0.0.0/33' is neither a host name nor a network" in error.msg
    settings.COHORTSYNC_EGRESS_ALLOW = ["10.0.0.0/8", "proxy.corp.example"]
    assert egress.check_settings() == []


def test_saving_checks_every_address_the_name_resolves_to(dns):
    dns({"partner.test": ["93.184.216.34", "10.0.0.5"]})
    egress.check_url("https://partner.test")  # without resolve_now: no DNS
    with pytest.raises(egress.EgressRefused, match=r"partner.test is 10.0.0.5, a private address"):
        egress.check_url("https://partner.test", resolve_now=True)
    dns({"partner.test": ["93.184.216.34", "2606:4700:4700::1111"]})
    egress.check_url("https://partner.test", resolve_now=True)


def test_a_name_that_does_not_resolve_now_is_left_to_the_connection(dns):
    dns({})
    egress.check_url("https://no-such-host.invalid", resolve_now=True)


# Over real sockets


def _loopback_urls(port: int) -> list[str]:
    return [
        f"https://127.0.0.1:{port}/",
        f"https://0x7f000001:{port}/",
        f"https://2130706433:{port}/",
        f"https://127.1:{port}/",
        f"https://0177.0.0.1:{port}/",
        f"https://[::ffff:127.0.0.1]:{port}/",
        f"https://[::ffff:0:7f00:1]:{port}/",
        f"https://localhost:{port}/",
        f"https://LOCALHOST.:{port}/",
        f"http://127.0.0.1:{port}/",
        f"http://localhost:{port}/",
    ]


def test_an_internal_service_on_the_loopback_receives_nothing(internal):
    with egress_http.session() as session:
        for url in _loopback_urls(internal.port):
            with pytest.raises(egress.EgressRefused):
                session.post(url, json={"x": 1}, timeout=2)
    assert internal.accepted == 0


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_an_internal_service_on_the_ipv6_loopback_receives_nothing():
    listener = Listener("::1")
    refused = pytest.raises(egress.EgressRefused, match="::1 is a loopback address")
    with servers(listener), egress_http.session() as session, refused:
        session.get(f"https://[::1]:{listener.port}/", timeout=2)
    assert listener.accepted == 0


def test_the_connection_checks_what_a_name_resolves_to_when_it_connects(internal, dns):
    dns({"partner.test": ["127.0.0.1"]})
    url = f"https://partner.test:{internal.port}/users/track"
    egress.check_url(url)  # a name: nothing to refuse without DNS
    with (
        egress_http.session() as session,
        pytest.raises(egress.EgressRefused, match=r"partner.test is"),
    ):
        session.post(url, json={}, timeout=2)
    assert internal.accepted == 0


def test_a_dns_change_between_save_and_request_is_refused_at_request_time(internal, dns):
    url = f"https://partner.test:{internal.port}"
    dns({"partner.test": ["93.184.216.34"]})
    egress.check_url(url, resolve_now=True)  # accepted when saved
    dns({"partner.test": ["127.0.0.1"]})
    with egress_http.session() as session, pytest.raises(egress.EgressRefused, match=r"127.0.0.1"):
        session.post(url, json={}, timeout=2)
    assert internal.accepted == 0


def test_one_private_answer_among_public_ones_refuses_before_any_connect(internal, dns):
    # The public address comes first: connecting to it would trip the tripwire.
    dns({"partner.test": ["93.184.216.34", "127.0.0.1"]})
    with egress_http.session() as session, pytest.raises(egress.EgressRefused, match=r"127.0.0.1"):
        session.get(f"https://partner.test:{internal.port}/", timeout=2)
    assert internal.accepted == 0


@pytest.mark.usefixtures("trusted_tls")
def test_the_socket_goes_to_the_checked_address_and_tls_verifies_the_name(settings, dns):
    server = AnswerServer(200, body={"message": "success"})
    settings.COHORTSYNC_EGRESS_ALLOW = ["partner.test", "other.test"]
    # The system resolver knows neither name: only a connection to the address this module
    # resolved and checked can reach the server.
    dns({"partner.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    with servers(server), egress_http.session() as session:
        response = session.get(f"https://partner.test:{server.port}/", timeout=5)
        assert response.json() == {"message": "success"}
        # Same address, a name the certificate does not carry: verification is by name.
        with pytest.raises(requests.exceptions.SSLError):
            session.get(f"https://other.test:{server.port}/", timeout=5)
    assert server.requests == ["GET /"]


@pytest.mark.usefixtures("trusted_tls")
def test_the_allow_list_lets_a_private_address_through(settings):
    server = AnswerServer(200, body={"ok": True})
    settings.COHORTSYNC_EGRESS_ALLOW = ["127.0.0.0/8", "::1/128"]
    with servers(server), egress_http.session() as session:
        assert session.get(f"{server.url}/", timeout=5).json() == {"ok": True}


@pytest.mark.usefixtures("trusted_tls")
def test_a_redirect_is_never_followed_even_when_the_caller_asks(settings, internal):
    server = AnswerServer(307, headers={"Location": f"http://127.0.0.1:{internal.port}/"})
    settings.COHORTSYNC_EGRESS_ALLOW = ["localhost"]
    with servers(server), egress_http.session() as session:
        # allow_redirects defaults on: the 307 is still the answer.
        assert session.post(f"{server.url}/", json={}, timeout=5).status_code == 307
        assert session.post(f"{server.url}/", json={}, timeout=5, allow_redirects=False).is_redirect
    assert len(server.requests) == 2
    assert internal.accepted == 0


@pytest.mark.usefixtures("trusted_tls")
def test_a_redirect_a_protected_session_follows_is_checked_like_any_request(settings, internal):
    server = AnswerServer(307, headers={"Location": f"https://127.0.0.1:{internal.port}/"})
    settings.COHORTSYNC_EGRESS_ALLOW = ["localhost"]
    session = egress_http.protect(requests.Session())
    with servers(server), session, pytest.raises(egress.EgressRefused, match=r"127.0.0.1"):
        session.get(f"{server.url}/", timeout=5)
    assert internal.accepted == 0


@pytest.mark.usefixtures("trusted_tls")
def test_proxies_from_the_environment_are_not_used(settings, monkeypatch, internal):
    server = AnswerServer(200, body={"ok": True})
    settings.COHORTSYNC_EGRESS_ALLOW = ["localhost"]
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{internal.port}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with servers(server), egress_http.session() as session:
        assert session.get(f"{server.url}/", timeout=5).json() == {"ok": True}
    assert internal.accepted == 0


def test_protect_takes_over_a_plain_session_once(internal):
    session = requests.Session()
    assert egress_http.protect(session) is session
    adapter = session.get_adapter("https://example.com")
    assert isinstance(adapter, egress_http.EgressAdapter)
    egress_http.protect(session)
    assert session.get_adapter("https://example.com") is adapter
    with pytest.raises(egress.EgressRefused):
        session.get(f"https://127.0.0.1:{internal.port}/", timeout=2)
    assert internal.accepted == 0
    session.close()


def test_an_answer_is_kept_as_a_short_single_line_excerpt():
    assert egress.excerpt("  ok\n\tfine  ") == "ok fine"
    long = "<b>" + "x" * 300
    cut = egress.excerpt(long)
    assert len(cut) == 120
    assert cut.endswith("…")
    assert cut.startswith("<b>x")  # escaping is the template's job


def test_a_protected_session_reads_no_netrc_and_keeps_the_ca_bundle_of_the_environment(
    monkeypatch, tmp_path
):
    # A ~/.netrc naming the partner's host must not add its credentials to a partner call.
    (tmp_path / ".netrc").write_text("machine example.com login leaked password secret\n")
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/private-ca.pem")
    session = egress_http.protect(requests.Session())
    prepared = session.prepare_request(requests.Request("GET", "https://example.com/"))
    assert "Authorization" not in prepared.headers
    assert session.trust_env is False
    assert session.verify == "/etc/ssl/private-ca.pem"
    session.close()

"""The egress policy: where cohortsync may send a request (invariant 10 in docs/architecture.md).

Every outbound HTTP call (partner adapters, credential checks, alert webhooks, and any future
source connector) goes through a client that applies what this module decides: partner calls
through `core.egress_client.EgressClient` (urllib3, lean on CPU), the rest (alert webhooks,
streamed downloads) through a requests session from `core.egress_http.session()` (or one
passed to `core.egress_http.protect()`). Both use the same checked connections:

- https only, unless COHORTSYNC_ALLOW_INSECURE_ENDPOINTS is on (development: the partner
  simulator speaks http on 127.0.0.1, so loopback and private addresses pass too);
- the host is resolved when the TCP connection is made and EVERY address it resolves to must be
  public: not loopback, private, link-local, unique-local, multicast, reserved, unspecified or
  otherwise special-purpose; an IPv4 address inside an IPv6 one (mapped, translated, NAT64) is
  judged as that IPv4 address; 6to4 and Teredo, tunnels to any IPv4 address, are refused;
- the socket connects to the address that was checked, so a DNS answer that changes between the
  check and the use cannot aim the call elsewhere; TLS still verifies the host NAME (SNI too);
- cloud metadata services are refused always, whatever the mode or the allow-list;
- COHORTSYNC_EGRESS_ALLOW (host names or CIDRs) lets an operator's partner proxy on a private
  network through;
- redirects are not followed (a 3xx is the answer, reported by the caller; `session()` follows
  none even when asked), and proxies from the environment are not used: the address connected
  to would then be the proxy's, not the one checked.

Written with the standard library (`ipaddress`, `socket`) over urllib3's connection classes:
the PyPI packages for this either follow only the first DNS answer, have no allow-list, or are
unmaintained.
"""

import functools
import ipaddress
import socket
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SockAddr = tuple[Any, ...]

# Instance metadata services hand out cloud credentials: never a destination, not even when
# development mode or the allow-list would let their range through.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OCI, DigitalOcean, OpenStack
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (legacy)
    )
)
METADATA_NAMES = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
# Faults development mode forgives: the simulator and a developer's own services.
DEVELOPMENT_FAULTS = frozenset({"loopback", "private"})
FAULT_TEXT = {
    "metadata": "a cloud metadata address",
    "unspecified": "an unspecified address",
    "loopback": "a loopback address",
    "link-local": "a link-local address",
    "multicast": "a multicast address",
    "private": "a private address",
    "site-local": "a site-local address",
    "tunnel": "a 6to4 or Teredo tunnel address",
    "reserved": "a reserved address",
    "special": "a special-purpose address",
}
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")  # ::ffff:a.b.c.d, IPv4-mapped
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # ::ffff:0:a.b.c.d, SIIT (RFC 2765)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # DNS64 synthesises these for IPv4-only hosts
_TUNNELS = (ipaddress.ip_network("2002::/16"), ipaddress.ip_network("2001::/32"))


class EgressRefused(Exception):
    """The policy does not allow this call. The message names the host and the address, never
    the path (a Slack webhook's path is its secret), and is safe to show to an admin."""


def resolve(host: str, port: int) -> list[tuple[socket.AddressFamily, SockAddr]]:
    """Every address `host` resolves to now, numeric notations included (0x7f000001, 127.1,
    2130706433 are inet_aton's). The one seam: tests replace it to play a DNS change."""
    answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys((family, sockaddr) for family, _, _, _, sockaddr in answers))


def _embedded(ip: IPAddress) -> IPAddress:
    """The IPv4 address a mapped, translated or NAT64 IPv6 address carries (the one its packets
    reach), else `ip` itself."""
    if isinstance(ip, ipaddress.IPv6Address) and (
        ip in _MAPPED or ip in _TRANSLATED or ip in _NAT64
    ):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def fault(ip: IPAddress) -> str | None:
    """Why `ip` is not a public destination (a FAULT_TEXT key), or None when it is."""
    ip = _embedded(ip)
    if ip in METADATA_ADDRESSES:
        return "metadata"
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in tunnel for tunnel in _TUNNELS):
            return "tunnel"
        if ip.is_site_local:
            return "site-local"
    # Most specific first: 127.0.0.1 and 169.254.x are "private" to ipaddress as well.
    for kind, test in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("special", not ip.is_global),  # 100.64.0.0/10, documentation ranges, ...
    ):
        if test:
            return kind
    return None


@functools.lru_cache(maxsize=8)
def _parse_allow_list(entries: tuple[str, ...]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip().strip("[]").lower()
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        if not entry or "/" in entry or ":" in entry or " " in entry:
            raise ImproperlyConfigured(
                f"COHORTSYNC_EGRESS_ALLOW: {raw!r} is neither a host name nor a network "
                "(like proxy.corp.example or 10.20.0.0/16)."
            )
        names.add(entry.rstrip("."))
    return frozenset(names), tuple(networks)


def _allow_setting() -> tuple[str, ...]:
    return tuple(getattr(settings, "COHORTSYNC_EGRESS_ALLOW", ()))


def allow_list() -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    """COHORTSYNC_EGRESS_ALLOW as (host names, networks); read on each use, so tests and a
    settings change apply at once (parsing is cached)."""
    return _parse_allow_list(_allow_setting())


def _insecure() -> bool:
    return bool(settings.COHORTSYNC_ALLOW_INSECURE_ENDPOINTS)


def check_address(host: str, ip: IPAddress) -> None:
    """Raise EgressRefused unless a call to `host` may go to `ip`."""
    kind = fault(ip)
    if kind is None:
        return
    names, networks = allow_list()
    if kind != "metadata":
        inside = (ip, _embedded(ip))
        if host in names or any(a in network for a in inside for network in networks):
            return
        if kind in DEVELOPMENT_FAULTS and _insecure():
            return
    what, shown = FAULT_TEXT[kind], _embedded(ip)
    where = f"{host} is {what}" if host == str(shown) else f"{host} is {shown}, {what}"
    if kind == "metadata":
        raise EgressRefused(f"{where}: cohortsync never calls a cloud metadata service.")
    raise EgressRefused(
        f"{where}: outbound calls go only to public addresses "
        "(COHORTSYNC_EGRESS_ALLOW lists the exceptions)."
    )


def _literal(host: str) -> list[IPAddress] | None:
    """The address(es) a numeric host stands for, in any notation the resolver reads, or None
    for a name. No DNS query is made."""
    try:
        answers = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        try:  # an IPv6 address with a zone the resolver does not know (fe80::1%eth9)
            return [ipaddress.ip_address(host)]
        except ValueError:
            return None
    return list(dict.fromkeys(ipaddress.ip_address(sockaddr[0]) for *_, sockaddr in answers))


def _host_of(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    # urlsplit lowercases and unbrackets; a trailing dot names the same host, and an escaped one
    # (%31%32%37.0.0.1, fe80::1%25eth0) the unescaped one.
    return parts.scheme.lower(), unquote(parts.hostname or "").rstrip(".")


def check_url(url: str, *, resolve_now: bool = False) -> None:
    """Raise EgressRefused unless the policy allows a call to `url`.

    Without `resolve_now` no DNS query is made (scheme, names, numeric hosts): safe wherever a
    config is parsed. With it, the host's current addresses are checked too (when an admin saves
    an endpoint), except in development mode, whose endpoints are the simulator's and whose
    tests should not wait on DNS. Either way, every connection checks again."""
    scheme, host = _host_of(url)
    insecure = _insecure()
    only_dns_can_tell = _judge(scheme, host, insecure, _allow_setting())
    if not (only_dns_can_tell and resolve_now and not insecure):
        return
    try:
        addresses = resolve(host, 443)
    except (OSError, UnicodeError):
        return  # no answer now; the connection will check whatever comes then
    for _, sockaddr in addresses:
        check_address(host, ipaddress.ip_address(sockaddr[0]))


@functools.lru_cache(maxsize=512)
def _judge(scheme: str, host: str, insecure: bool, allow: tuple[str, ...]) -> bool:
    """What can be judged without DNS; True when `host` is a name only DNS can judge. Cached, as
    the adapter runs it on every request: its arguments are all it reads (refusals, raised, are
    not cached)."""
    if scheme != "https" and not (scheme == "http" and insecure):
        raise EgressRefused(
            "Outbound calls must use https (plain http only with "
            "COHORTSYNC_ALLOW_INSECURE_ENDPOINTS on, in development)."
        )
    if not host:
        raise EgressRefused("The URL has no host.")
    if host in METADATA_NAMES:
        raise EgressRefused(f"{host} is a cloud metadata service: cohortsync never calls it.")
    if host in _parse_allow_list(allow)[0]:
        return False
    literal = _literal(host)
    if literal is not None:
        for ip in literal:
            check_address(host, ip)
        return False
    if ":" in host or "%" in host:
        raise EgressRefused(f"{host} is neither a host name nor an address.")
    if host == "localhost" or host.endswith(".localhost"):
        # RFC 6761: always the loopback, whatever a resolver says.
        check_address(host, ipaddress.ip_address("127.0.0.1"))
        return False
    return True


def excerpt(text: str, limit: int = 120) -> str:
    """What may be kept and shown of an answer from outside: one line, at most `limit`
    characters. Templates escape it; the cap keeps an answer from becoming a way to read a
    service out through the dashboard."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def check_settings(**_: Any) -> list[CheckMessage]:
    """A Django system check: a bad COHORTSYNC_EGRESS_ALLOW fails at start, not at a call."""
    try:
        allow_list()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="core.E001")]
    return []

"""The egress policy (core/egress.py) on a lean HTTP client: urllib3 without requests.

Partner calls go through `EgressClient` rather than a requests session because requests costs
the sync engine's worker CPU it has better uses for: one 75-object Braze `/users/track` POST on
the loopback took about 450 µs of CPU through requests and 130 µs through urllib3 alone
(bench/partner_call_cpu.py). A full sync of a million members makes over 13,000 of them on
threads that share one interpreter lock.

What the client guarantees, as `core.egress_http.session()` does:

- the URL is checked (`egress.check_url`) before every request, and every TCP connection is
  made to an address the policy checked at that moment (the pool classes of core/egress_http.py);
- no redirect is followed: a 3xx is the answer;
- no proxy, and nothing read from the environment per request (no ~/.netrc, no *_PROXY);
  the CA bundle is certifi's unless REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE names another, as
  requests reads them, read once when the client is made;
- no retries: the engine retries a batch itself, with backoff and its rate limit.

One client is safe to share between threads: the sync engine keeps one per run for all its
sending threads, each request taking a keep-alive connection from the pool and giving it back.
"""

import functools
import os
import ssl
from collections.abc import Mapping

import certifi
import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    DecodeError,
    LocationValueError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.exceptions import SSLError as TLSError
from urllib3.util.ssl_ import create_urllib3_context

from core import egress
from core.egress_http import CHECKED_POOLS, named_ca_bundle

# Connections kept open per host: the engine keeps up to 256 requests in flight on a run
# (syncs/engine/run.py SENDS_IN_FLIGHT). The pool does not block: a request beyond this opens a
# connection of its own, closed once answered.
MAX_CONNECTIONS = 256
# What a failed request is raised as: urllib3's errors and the socket's. `failure_name` says
# which one it was, in words a note on a run's page keeps.
FAILURES: tuple[type[Exception], ...] = (urllib3.exceptions.HTTPError, OSError)
# Sent on every request: answers may come compressed (urllib3 decodes them), as through requests.
DEFAULT_HEADERS = {"Accept-Encoding": "gzip, deflate"}


def ca_bundle() -> str:
    """The CA certificates TLS verification trusts: the file (or directory) that
    REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE names, as requests reads them, else certifi's."""
    return named_ca_bundle() or certifi.where()


@functools.lru_cache(maxsize=4)
def tls_context(bundle: str) -> ssl.SSLContext:
    """One verifying TLS context per bundle, shared by every client and connection: loading
    certifi's bundle costs milliseconds, too much for each short-lived client. urllib3 checks
    the certificate against the URL's host name itself."""
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    if os.path.isdir(bundle):
        context.load_verify_locations(capath=bundle)
    else:
        context.load_verify_locations(cafile=bundle)
    return context


class EgressClient:
    """A thread-safe HTTP client whose every request obeys the egress policy."""

    def __init__(self, *, max_connections: int = MAX_CONNECTIONS) -> None:
        self._pools = urllib3.PoolManager(
            maxsize=max_connections,
            block=False,
            retries=False,
            ssl_context=tls_context(ca_bundle()),
        )
        self._pools.pool_classes_by_scheme = dict(CHECKED_POOLS)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        timeout: tuple[float, float],
    ) -> urllib3.BaseHTTPResponse:
        """Send one request and read its whole answer, whatever its status (a 3xx included).

        Raises egress.EgressRefused when the policy refuses the URL or an address its host
        resolves to (before any packet leaves), and one of FAILURES when the network fails."""
        egress.check_url(url)
        connect, read = timeout
        return self._pools.urlopen(
            method,
            url,
            body=body,
            headers={**DEFAULT_HEADERS, **headers},
            timeout=urllib3.Timeout(connect=connect, read=read),
            redirect=False,
            retries=False,
        )

    def close(self) -> None:
        """Close every connection kept open. The client may still be used: it opens new ones."""
        self._pools.clear()

    def __enter__(self) -> "EgressClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def failure_name(exc: BaseException) -> str:
    """What a failed request is called in a note: the names requests gave these failures, so a
    run's notes read the same before and after partner calls left requests."""
    if isinstance(exc, ReadTimeoutError):
        return "ReadTimeout"
    if isinstance(exc, NewConnectionError):  # a subclass of ConnectTimeoutError
        return "ConnectionError"
    if isinstance(exc, ConnectTimeoutError):
        return "ConnectTimeout"
    if isinstance(exc, TLSError):
        return "SSLError"
    if isinstance(exc, DecodeError):
        return "ContentDecodingError"
    if isinstance(exc, LocationValueError):
        return "InvalidURL"
    if isinstance(exc, ProtocolError | OSError):
        return "ConnectionError"
    return type(exc).__name__

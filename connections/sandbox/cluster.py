"""`manage.py partner_sandbox --processes N`: the simulator as N processes on one port.

One Python process answers about 700 Braze requests/s on the 2-core box the benchmarks run on
(the GIL gives its threads one core), so a benchmark near that figure measures the simulator,
not cohortsync. Here each process listens on its own socket bound to the same port with
`SO_REUSEPORT`, and the kernel spreads new connections across them. The processes share their
rate limits through shared memory (connections/sandbox/shared.py) and relay control requests to
each other through private loopback addresses (connections/sandbox/relay.py), so a limit, a key
or a latency set through any of them holds in all. Every socket is bound, and the shared memory
made, before the fork, so each process knows its siblings' addresses from the start.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import socket
import time
from types import FrameType
from typing import Any

from connections.sandbox.server import SandboxServer
from connections.sandbox.shared import SharedLimits
from connections.sandbox.state import (
    DEFAULT_BRAZE_EXPORT_RATE_LIMIT,
    DEFAULT_BRAZE_EXPORT_RATE_WINDOW,
    DEFAULT_BRAZE_RATE_LIMIT,
    DEFAULT_BRAZE_RATE_WINDOW,
    SandboxState,
)

LISTEN_BACKLOG = 1024
READY_TIMEOUT_SECONDS = 30
_PRIVATE_HOST = "127.0.0.1"


class SandboxCluster:
    """`processes` simulator processes on `host:port` (`port=0` picks a free one).

    `start()` returns once every process serves; `serve_forever()` then waits until
    `request_stop()` (a signal handler) or a process dies, and stops them all.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, processes: int = 2) -> None:
        if processes < 2:
            raise ValueError("A cluster needs at least 2 processes; use SandboxServer for one.")
        self._context = multiprocessing.get_context("fork")
        self.shared = SharedLimits(
            (DEFAULT_BRAZE_RATE_LIMIT, DEFAULT_BRAZE_RATE_WINDOW),
            (DEFAULT_BRAZE_EXPORT_RATE_LIMIT, DEFAULT_BRAZE_EXPORT_RATE_WINDOW),
        )
        self._public: list[socket.socket] = []
        self._private: list[socket.socket] = []
        try:
            for _ in range(processes):
                self._public.append(_listening(host, port, reuse_port=True))
                # Port 0 picks a free port once; the other processes join it.
                port = self._public[0].getsockname()[1]
                self._private.append(_listening(_PRIVATE_HOST, 0, reuse_port=False))
        except OSError:
            self._close_sockets()
            raise
        self.host = host
        self.port = port
        self._private_addresses = [
            f"{_PRIVATE_HOST}:{sock.getsockname()[1]}" for sock in self._private
        ]
        self._ready = [self._context.Event() for _ in range(processes)]
        self._children: list[Any] = []
        self._stop_requested = False

    @property
    def processes(self) -> int:
        return len(self._public)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    def start(self) -> SandboxCluster:
        for index in range(self.processes):
            child = self._context.Process(
                target=self._serve_one, args=(index,), name=f"partner-sandbox-{index}"
            )
            child.start()
            self._children.append(child)
        # The children hold the sockets now; this process keeps none open.
        self._close_sockets()
        for index, ready in enumerate(self._ready):
            if not ready.wait(READY_TIMEOUT_SECONDS):
                self.stop()
                raise RuntimeError(f"Sandbox process {index} did not start")
        return self

    def request_stop(self) -> None:
        """Ask `serve_forever()` to return. Only sets a flag, so it is safe in a signal handler."""
        self._stop_requested = True

    def serve_forever(self) -> None:
        """Serve until `request_stop()`; a process that dies stops the others (RuntimeError)."""
        if not self._children:
            self.start()
        try:
            while not self._stop_requested:
                dead = [child for child in self._children if not child.is_alive()]
                if dead:
                    raise RuntimeError(
                        f"Sandbox process {dead[0].name} exited ({dead[0].exitcode})"
                    )
                time.sleep(0.2)
        finally:
            self.stop()

    def stop(self) -> None:
        for child in self._children:
            if child.is_alive():
                child.terminate()
        for child in self._children:
            child.join(timeout=30)
            if child.is_alive():
                child.kill()
                child.join()

    def _serve_one(self, index: int) -> None:
        """One process: its public socket, its private one for its siblings' relays, and its
        own state whose rate limits are the shared ones."""
        for other, sock in enumerate(self._public + self._private):
            if other not in (index, self.processes + index):
                sock.close()
        peers = [address for other, address in enumerate(self._private_addresses) if other != index]
        # Every process starts the shared limits at the defaults here: wait for them all to be
        # ready before anyone hears of the port, so no configured limit is undone.
        state = SandboxState(shared=self.shared)
        public = SandboxServer(state=state, listener=self._public[index], peers=peers)
        private = SandboxServer(state=state, listener=self._private[index], internal=True)

        def request_stop(signum: int, frame: FrameType | None) -> None:
            public.request_stop()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        private.start()
        public.start()
        self._ready[index].set()
        try:
            public.serve_forever()
        finally:
            private.stop()

    def _close_sockets(self) -> None:
        for sock in self._public + self._private:
            with contextlib.suppress(OSError):
                sock.close()


def _listening(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock

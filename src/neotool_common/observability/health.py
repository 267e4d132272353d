"""Health probes and the metrics endpoint: what an orchestrator asks a running consumer.

=============  ======================================================================================
``/metrics``   the injected registry in the Prometheus text format (OpenMetrics if asked for; gzip if
               accepted)
``/healthz``   liveness: 200 while the poll loop keeps turning, 503 once it has not ticked for
               ``max_poll_interval_s`` (the broker would evict the member by then too) or has stopped
``/readyz``    readiness: 200 while connected to the cluster and running, assigned partitions or not
               (an idle member of a group is ready); 503 otherwise
=============  ======================================================================================

Bodies of the probes are small JSON objects, e.g. ``{"status":"ok","last_poll_age_s":0.12}``. Any other path
is a 404. The server never logs requests.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted

from neotool_common.errors import ConfigurationError

__all__ = ["HealthServer", "HealthState", "Liveness", "Readiness"]

Clock = Callable[[], float]
# How often the serving thread looks for a shutdown request; bounds how long close() waits.
_SHUTDOWN_POLL_S: Final = 0.05


@dataclass(frozen=True)
class Liveness:
    """One answer of the liveness probe. ``status`` is ``starting``, ``ok``, ``stalled`` or ``stopped``."""

    status: str
    last_poll_age_s: float | None

    @property
    def ok(self) -> bool:
        return self.status in ("starting", "ok")


@dataclass(frozen=True)
class Readiness:
    """One answer of the readiness probe."""

    connected: bool
    running: bool
    assigned_partitions: int
    reason: str | None = None  # why not connected, when known (authentication refused, say)
    missing_topics: tuple[str, ...] = ()  # source topics that do not exist: nothing to consume from them
    missing_tier_topics: tuple[str, ...] = ()  # the group's retry tier topics that do not exist

    @property
    def ok(self) -> bool:
        return self.connected and self.running and not self.missing_topics and not self.missing_tier_topics


class HealthState:
    """What the poll loop tells the probes; updated with plain attribute writes, never a lock.

    The runner calls :meth:`poll_tick` once per poll-loop iteration with a reading of the same clock this
    object was given (``time.monotonic`` by default). Probes are answered on another thread: each answer reads
    a handful of attributes once, so at worst it reflects a state a few microseconds old.

    Liveness: a process whose loop never started is live (start-up is the readiness probe's business); a
    running loop is live while its last tick is at most ``max_poll_interval_s`` old; a loop that has stopped
    is not live, so a process whose loop died is restarted.
    """

    def __init__(self, max_poll_interval_s: float, clock: Clock = time.monotonic) -> None:
        if max_poll_interval_s <= 0:
            raise ValueError(f"max_poll_interval_s must be positive, not {max_poll_interval_s}")
        self.max_poll_interval_s = max_poll_interval_s
        self._clock = clock
        self._last_tick: float | None = None
        self._running = False
        self._has_run = False
        self._connected = False
        self._reason: str | None = None
        self._missing_topics: tuple[str, ...] = ()
        self._missing_tier_topics: tuple[str, ...] = ()
        self._assigned = 0

    def poll_tick(self, now: float) -> None:
        """Record one turn of the poll loop at ``now`` (a reading of this state's clock). Hot path: one write."""
        self._last_tick = now

    def set_running(self, running: bool) -> None:
        """The loop starts (the liveness window opens now) or stops."""
        if running:
            self._last_tick = self._clock()
            self._has_run = True
        self._running = running

    def set_connected(self, connected: bool, reason: str | None = None) -> None:
        """Connected to the cluster or not; ``reason`` (no secret in it) says why not, for ``/readyz``."""
        self._connected = connected
        self._reason = None if connected else reason

    def set_missing_topics(self, topics: tuple[str, ...], tier_topics: tuple[str, ...] = ()) -> None:
        """The source topics and the retry tier topics that do not exist (none: all of them do)."""
        self._missing_topics = topics
        self._missing_tier_topics = tier_topics

    def set_assignment(self, partitions: int) -> None:
        """The number of partitions currently assigned to this member (0 while idle in the group)."""
        self._assigned = partitions

    def liveness(self) -> Liveness:
        last_tick, running, has_run = self._last_tick, self._running, self._has_run
        age = None if last_tick is None else max(0.0, self._clock() - last_tick)
        if not has_run:
            return Liveness("starting", age)
        if not running:
            return Liveness("stopped", age)
        stalled = age is None or age > self.max_poll_interval_s
        return Liveness("stalled" if stalled else "ok", age)

    def readiness(self) -> Readiness:
        return Readiness(
            self._connected, self._running, self._assigned, self._reason, self._missing_topics,
            self._missing_tier_topics,
        )  # fmt: skip


def _liveness_body(live: Liveness) -> dict[str, Any]:
    age = None if live.last_poll_age_s is None else round(live.last_poll_age_s, 3)
    return {"status": live.status, "last_poll_age_s": age}


def _readiness_body(ready: Readiness) -> dict[str, Any]:
    return {
        "status": "ready" if ready.ok else "not_ready",
        "connected": ready.connected,
        "running": ready.running,
        "assigned_partitions": ready.assigned_partitions,
        **({"reason": _reason(ready)} if _reason(ready) and not ready.ok else {}),
    }


def _reason(ready: Readiness) -> str | None:
    if not ready.connected or not (ready.missing_topics or ready.missing_tier_topics):
        return ready.reason
    missing = [
        f"{kind} do not exist: {', '.join(topics)}"
        for kind, topics in (("source topics", ready.missing_topics), ("retry tier topics", ready.missing_tier_topics))
        if topics
    ]
    return "; ".join(missing)


class _ProbeHTTPServer(ThreadingHTTPServer):
    """Carries what the handlers read; one handler thread per request, never outliving the process."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], registry: CollectorRegistry, state: HealthState) -> None:
        self.registry = registry
        self.state = state
        super().__init__(address, _ProbeHandler)


class _ProbeHandler(BaseHTTPRequestHandler):
    server: _ProbeHTTPServer
    server_version = "neotool-health"

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        if path == "/metrics":
            self._send_metrics()
        elif path == "/healthz":
            live = self.server.state.liveness()
            self._send_json(HTTPStatus.OK if live.ok else HTTPStatus.SERVICE_UNAVAILABLE, _liveness_body(live))
        elif path == "/readyz":
            ready = self.server.state.readiness()
            self._send_json(HTTPStatus.OK if ready.ok else HTTPStatus.SERVICE_UNAVAILABLE, _readiness_body(ready))
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"status": "not_found"})

    def _send_metrics(self) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        body = encoder(self.server.registry)
        headers = {"Content-Type": content_type}
        if gzip_accepted(self.headers.get("Accept-Encoding", "")):
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        self._send(HTTPStatus.OK, body, headers)

    def _send_json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        self._send(status, body, {"Content-Type": "application/json", "Cache-Control": "no-store"})

    def _send(self, status: HTTPStatus, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes arrive every few seconds: never write them to stderr."""


class HealthServer:
    """Serves ``/metrics``, ``/healthz`` and ``/readyz`` on a daemon thread.

    ``port`` 0 picks a free port; :attr:`port` tells which once started. :meth:`start` raises
    :class:`ConfigurationError` (``METRICS_PORT``) when the address cannot be bound. :meth:`close` stops
    serving, joins the thread and releases the port; it is idempotent. Usable as a context manager.
    """

    def __init__(self, port: int, registry: CollectorRegistry, state: HealthState, host: str = "0.0.0.0") -> None:  # noqa: S104 - probes must be reachable from outside the pod
        if not 0 <= port <= 65535:
            raise ConfigurationError("METRICS_PORT", f"{port} is not a TCP port (0-65535)")
        self._address = (host, port)
        self._registry = registry
        self._state = state
        self._server: _ProbeHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started (the requested one before)."""
        return self._server.server_port if self._server is not None else self._address[1]

    def start(self) -> None:
        if self._server is not None:
            return
        try:
            server = _ProbeHTTPServer(self._address, self._registry, self._state)
        except OSError as err:
            host, port = self._address
            raise ConfigurationError("METRICS_PORT", f"cannot listen on {host}:{port}: {err.strerror}") from err
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(_SHUTDOWN_POLL_S,), name="neotool-health", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        thread.join()
        server.server_close()
        self._server = self._thread = None

    def __enter__(self) -> HealthServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

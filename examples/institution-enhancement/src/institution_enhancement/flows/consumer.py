"""The consumer: ``financial.institution.v1`` in, one enriched row per ``record_id`` out.

The runner (:class:`~neotool_common.consumer_base.KafkaConsumerRunner`) reads, validates the envelope and
the payload schema, commits, retries and dead-letters; this class only says what to do with one record::

    institution-enhancement-consumer             # console script: main() below
    KAFKA_BROKERS=... DATABASE_URL=... institution-enhancement-consumer

Start-up: :meth:`InstitutionConsumer.setup` applies the pending migrations (unless ``DATABASE_MIGRATE``
is false) and opens the store, both before the first record is read.

Throughput mode: ``ordering = "key"`` with ``max_concurrency = 8``. Each record waits on the routing directory (a
remote, rate-limited lookup in production), and institutions are independent of each other, so eight lookups
run at once; records with the same key (the ``record_id``) still apply in offset order, and a lookup that was
rate-limited holds back only its own institution while it waits out its backoff. ``process_batch`` would save
database round trips, but the lookup is per record anyway, and a single bad routing number would make every batch
fall back to one record at a time. ``MAX_CONCURRENCY`` / ``ORDERING`` change it without a rebuild.

Retry tiers (``docs/retry-topics.md``): the directory's rate limit can last a minute, far longer than in-place
retries should hold an institution back. After its in-place attempts a rate-limited lookup waits in
``financial.institution.v1.retry.institution-enhancement.1m``, then ``….10m``, while the partition flows on;
only then is it dead-lettered. ``RETRY_TOPIC_DELAYS_MS`` changes the tiers without a rebuild.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import structlog

from institution_enhancement.tasks.config import AppConfig
from institution_enhancement.tasks.directory import RoutingDirectory, SimulatedFedDirectory
from institution_enhancement.tasks.migrations import migrate
from institution_enhancement.tasks.processor import InstitutionProcessor
from institution_enhancement.tasks.store import InstitutionStore, open_store
from neotool_common import Message, RunnerSettings
from neotool_common.consumer_base import KafkaConsumerRunner

__all__ = ["TOPIC", "InstitutionConsumer", "main"]

TOPIC = "financial.institution.v1"
_log = structlog.get_logger("institution_enhancement")


class InstitutionConsumer(KafkaConsumerRunner):
    """Checks, enriches and upserts financial institutions.

    ``app_config`` defaults to :meth:`AppConfig.from_env`; ``directory`` to the simulated directory. Any
    other keyword (``registry``, ``clock``...) goes to the runner.
    """

    topics = (TOPIC,)
    group_id = "institution-enhancement"
    payload_schema = files("institution_enhancement") / "schemas" / "institution.v1.json"
    task_name = "institution_enhancement"
    ordering = "key"
    max_concurrency = 8
    retry_topic_delays_ms = (60_000, 600_000)  # a rate limit's window, then ten of them

    def __init__(
        self,
        settings: RunnerSettings | None = None,
        *,
        app_config: AppConfig | None = None,
        directory: RoutingDirectory | None = None,
        **runner_options: Any,
    ) -> None:
        self.app_config = app_config if app_config is not None else AppConfig.from_env()
        self.directory = directory if directory is not None else SimulatedFedDirectory()
        super().__init__(settings, **runner_options)
        self._store: InstitutionStore | None = None
        self._processor: InstitutionProcessor | None = None

    def setup(self) -> None:
        """Migrate (may block on the migration lock while another replica migrates), then open the store."""
        config = self.app_config
        if config.migrate_on_start:
            applied = migrate(config)
            _log.info("database migrated", database=config.redacted_url, applied=applied)
        self._store = open_store(config)
        self._processor = InstitutionProcessor(self._store, self.directory)
        _log.info("store open", database=config.redacted_url, engine=config.engine.value)

    def process(self, message: Message) -> None:
        assert self._processor is not None, "setup() runs before the first record"
        self._processor.process(message)

    def teardown(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


main = InstitutionConsumer.main

"""Publishing a whole batch, then its manifest: how many records, and exactly where they went.

::

    with producer.batch("people.ingest.v1") as batch:       # a new batch_id (UUIDv7), one part
        for row in rows:
            batch.publish(row, record_id=row["id"])
    batch.manifest                                          # what was published to people.ingest.v1.batches

Leaving the ``with`` block normally closes the batch (:meth:`BatchPublication.close`): it waits until every
record's delivery report came, then publishes the manifest (:class:`~neotool_common.batches.BatchManifest`)
to ``<topic>.batches`` keyed ``<batch_id>/<part>`` and waits for that too. Records that finally failed are
counted in it, never left out: ``spooled`` (in the producer's spool) or ``lost`` (in no spool, or unanswered
when ``close`` gave up waiting), and the batch cannot become complete while any is. When the block raises, no
manifest is published: the records already sent belong to no manifest and no reconciliation counts them.

A batch published by several processes: each opens ``producer.batch(topic, batch_id=shared, part="<name>",
expected_parts=N)`` with the same ``batch_id`` and ``N`` and its own ``part``; the batch is whole once N
distinct parts have published their manifests. Re-publishing a part (same key) replaces its manifest.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

from neotool_common.batches.manifest import BatchManifest, manifest_topic_for
from neotool_common.batches.tracker import BatchTracker
from neotool_common.producing.delivery import DeliveryError
from neotool_common.producing.envelope import _canonical_batch_id, new_batch_id
from neotool_common.producing.headers import HeaderInput
from neotool_common.producing.protocols import SystemWallClock, WallClock

if TYPE_CHECKING:
    from neotool_common.producing.producer import EnvelopeProducer

__all__ = ["BatchPublication", "producer_identity"]

SINGLE_PART = "0"


def producer_identity() -> str:
    """``host/pid``: which process published a part."""
    return f"{socket.gethostname()}/{os.getpid()}"


class BatchPublication:
    """One part of one batch, published through ``producer``; see the module docstring. Not thread-safe."""

    def __init__(
        self,
        producer: EnvelopeProducer,
        topic: str,
        *,
        batch_id: str | None = None,
        part: str | None = None,
        expected_parts: int = 1,
        clock: WallClock | None = None,
    ) -> None:
        if part is None and expected_parts > 1:
            raise ValueError("a batch of several parts needs a part name for each (part=...)")
        self.batch_id = new_batch_id() if batch_id is None else _canonical_batch_id(batch_id)
        self.topic = topic
        self._producer = producer
        self._clock: WallClock = SystemWallClock() if clock is None else clock
        part_name = SINGLE_PART if part is None else part
        self._tracker = BatchTracker(self.batch_id, topic, part_name, expected_parts, producer_identity())
        self.manifest: BatchManifest | None = None

    def publish(
        self,
        payload: Mapping[str, Any],
        *,
        record_id: str,
        key: str | bytes | None = None,
        headers: HeaderInput | None = None,
    ) -> dict[str, Any]:
        """Queue one record of the batch (see :meth:`EnvelopeProducer.publish`); returns its envelope."""
        self._require_open()
        return self._producer.publish(
            self.topic,
            payload,
            record_id=record_id,
            batch_id=self.batch_id,
            key=key,
            headers=headers,
            tracker=self._tracker,
        )

    def publish_raw(
        self, value: bytes | None, key: str | bytes | None = None, headers: HeaderInput | None = None
    ) -> None:
        """Queue bytes as they are, counted as one of the batch's records (a demo's poison, say)."""
        self._require_open()
        self._producer.publish_raw(self.topic, value, key=key, headers=headers, tracker=self._tracker)

    def close(self, timeout: float = 60.0) -> BatchManifest:
        """Wait for every record's outcome (up to ``timeout`` s), publish the manifest, wait for it; idempotent.

        Raises :class:`DeliveryError` when records (or the manifest) finally failed and are in no spool: the
        manifest, counting them as ``lost``, was still published when it could be.
        """
        if self.manifest is not None:
            return self.manifest
        deadline = time.monotonic() + timeout
        failure = self._await_outcomes(deadline)
        self._tracker.abandon_pending()
        manifest = self._tracker.manifest(datetime.fromtimestamp(self._clock.time(), UTC))
        self.manifest = manifest
        self._producer.publish_raw(manifest_topic_for(self.topic), manifest.encode(), key=manifest.key)
        try:
            self._producer.flush(max(1.0, deadline - time.monotonic()))
        except DeliveryError as error:
            failure = failure or error
        if failure is not None:
            raise failure
        return manifest

    def _await_outcomes(self, deadline: float) -> DeliveryError | None:
        failure: DeliveryError | None = None
        while self._tracker.pending and time.monotonic() < deadline:
            try:
                self._producer.flush(max(0.0, deadline - time.monotonic()))
            except DeliveryError as error:
                failure = failure or error
        return failure

    def _require_open(self) -> None:
        if self.manifest is not None:
            raise RuntimeError(f"batch {self.batch_id} is closed: its manifest is published")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()

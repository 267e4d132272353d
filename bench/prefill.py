"""Writing the benchmark topics once per run, before any variant reads them.

The producer follows the platform standard (§4.3: ``acks=all``, idempotence, zstd) with a longer linger so the
pre-fill is quick; consumers therefore read compressed batches, as they do in production.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from confluent_kafka import Producer

from bench.records import envelope_values, poison_count
from neotool_common.testing.kafka import KafkaEndpoint

__all__ = ["Topic", "prefill"]


@dataclass(frozen=True)
class Topic:
    name: str
    records: int
    value_bytes: int
    poison: int

    @property
    def mean_value_bytes(self) -> float:
        return self.value_bytes / self.records

    def head(self, records: int) -> Topic:
        """The first ``records`` of a clean topic (a variant too slow to read all of it in a round)."""
        if not records or records >= self.records:
            return self
        if self.poison:
            raise ValueError("only a clean topic is read in part")
        return replace(self, records=records, value_bytes=round(self.mean_value_bytes * records))


def prefill(endpoint: KafkaEndpoint, name: str, records: int, *, poison: bool, partitions: int = 1) -> Topic:
    """Create the topic ``name`` (one partition unless told) and write ``records`` envelopes to it, round-robin."""
    endpoint.create_topic(name, partitions)
    producer = Producer(
        {
            "bootstrap.servers": endpoint.bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": "zstd",
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 500_000,
        }
    )
    failures: list[str] = []

    def delivered(err: object, msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    total_bytes = 0
    for index, (key, value) in enumerate(envelope_values(records, poison=poison)):
        total_bytes += len(value)
        while True:
            try:
                producer.produce(name, value=value, key=key, partition=index % partitions, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(120)
    if left or failures:
        raise RuntimeError(f"pre-fill of {name} failed: {left} unsent, errors {failures[:3]}")
    return Topic(name, records, total_bytes, poison_count(records) if poison else 0)

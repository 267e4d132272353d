"""Variant 6: getsentry's arroyo, a ``RunTask`` that decodes the JSON, then ``CommitOffsets``.

Consumer settings from arroyo's ``build_kafka_consumer_configuration`` defaults (``BENCH_ARROYO_QUEUED_MIN_MESSAGES``
overrides its ``queued_min_messages``), the commit policy its ``ONCE_PER_SECOND``. JSON is decoded with orjson, as
the runner and FastStream do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import orjson
from arroyo.backends.kafka import KafkaConsumer, KafkaPayload, build_kafka_consumer_configuration
from arroyo.commit import ONCE_PER_SECOND
from arroyo.processing import StreamProcessor
from arroyo.processing.strategies import CommitOffsets, ProcessingStrategy, ProcessingStrategyFactory, RunTask
from arroyo.types import Commit, Message, Partition, Topic

from bench.meter import Meter, parse_variant_args


class DecodeAndCommit(ProcessingStrategyFactory[KafkaPayload]):
    def __init__(self, decode: Any) -> None:
        self._decode = decode

    def create_with_partitions(
        self, commit: Commit, partitions: Mapping[Partition, int]
    ) -> ProcessingStrategy[KafkaPayload]:
        return RunTask(self._decode, CommitOffsets(commit))


def main() -> None:
    args = parse_variant_args()
    meter = Meter()
    count = 0
    queued = os.environ.get("BENCH_ARROYO_QUEUED_MIN_MESSAGES")
    consumer = KafkaConsumer(
        build_kafka_consumer_configuration(
            {},
            group_id=args.group,
            auto_offset_reset="earliest",
            bootstrap_servers=[args.bootstrap],
            queued_min_messages=int(queued) if queued else None,
        )
    )

    def decode(message: Message[KafkaPayload]) -> Any:
        nonlocal count
        document = orjson.loads(message.payload.value)
        count += 1
        if count == 1:
            meter.first(1)
        if count == args.expected:
            meter.last(count)
            processor.signal_shutdown()
        return document

    processor = StreamProcessor(consumer, Topic(args.topic), DecodeAndCommit(decode), ONCE_PER_SECOND)
    processor.run()
    meter.write(args.out, "arroyo-tuned" if queued else "arroyo", count)


if __name__ == "__main__":
    main()

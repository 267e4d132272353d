"""Variant 2: what a careful engineer writes without a framework.

The same decoding and envelope validation as the runner (:class:`~neotool_common.records.validation.EnvelopeReader`),
the offset of each record stored once it is handled (``store_offsets``), and an asynchronous commit of the
stored offsets once a second. Invalid records are only counted: this variant reads the clean topic.
"""

from __future__ import annotations

import time
from typing import Any, cast

from confluent_kafka import Consumer, KafkaException

from bench.meter import Meter, parse_variant_args
from neotool_common.errors import InvalidRecordError
from neotool_common.records.message import Message
from neotool_common.records.validation import EnvelopeReader

BATCH = 1000
POLL_TIMEOUT_S = 0.2
COMMIT_INTERVAL_S = 1.0
Headers = list[tuple[str, bytes | None]]


class Commits:
    """Counts the commits the group coordinator acknowledged (served by ``consume()``)."""

    def __init__(self) -> None:
        self.acknowledged = 0
        self.failed = 0

    def on_commit(self, err: Any, partitions: Any) -> None:
        if err is None:
            self.acknowledged += 1
        else:
            self.failed += 1


def main() -> None:
    args = parse_variant_args()
    commits = Commits()
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "on_commit": commits.on_commit,
        }
    )
    reader = EnvelopeReader()
    meter = Meter(args.warmup)
    latency = args.mode == "latency"

    def process(message: Message) -> None:
        if latency:
            meter.latency(message.payload["sent_ns"])

    consumer.subscribe([args.topic])
    count = invalid = window_commits = stored = 0
    last_commit = time.monotonic()
    while count < args.expected:
        for msg in consumer.consume(BATCH, POLL_TIMEOUT_S):
            error = msg.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                continue
            try:
                message = reader.read(
                    msg.value(),
                    msg.key(),
                    tuple(cast(Headers, msg.headers() or ())),
                    cast(str, msg.topic()),
                    cast(int, msg.partition()),
                    cast(int, msg.offset()),
                    msg.timestamp()[1],
                )
            except InvalidRecordError:
                invalid += 1
            else:
                process(message)
            consumer.store_offsets(msg)
            stored += 1
            count += 1
            if count == 1:
                meter.first(count)
                window_commits = commits.acknowledged
        now = time.monotonic()
        if stored and now - last_commit >= COMMIT_INTERVAL_S:
            consumer.commit(asynchronous=True)
            last_commit, stored = now, 0
    meter.last(count)
    meter.extra.update(commits_in_window=commits.acknowledged - window_commits, invalid=invalid)
    consumer.commit(asynchronous=False)
    consumer.close()
    meter.extra.update(commits_total=commits.acknowledged, commit_failures=commits.failed)
    meter.write(args.out, "handwritten", count)


if __name__ == "__main__":
    main()

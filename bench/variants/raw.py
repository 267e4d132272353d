"""Variant 1, the limit: confluent-kafka's ``consume()`` in a loop, counting records and nothing else."""

from __future__ import annotations

from confluent_kafka import Consumer

from bench.meter import Meter, parse_variant_args

BATCH = 1000
POLL_TIMEOUT_S = 0.2


def main() -> None:
    args = parse_variant_args()
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([args.topic])
    meter = Meter()
    count = 0
    while count < args.expected:
        for msg in consumer.consume(BATCH, POLL_TIMEOUT_S):
            if msg.error() is None:
                count += 1
        if count and not meter.started:
            meter.first(count)
    meter.last(count)
    consumer.close()
    meter.write(args.out, "raw", count)


if __name__ == "__main__":
    main()

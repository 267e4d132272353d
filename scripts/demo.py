"""`make demo`: a real broker, a sample batch through it, and a short summary (grows with the runner)."""

from __future__ import annotations

import sys
import time
import uuid

from confluent_kafka import Consumer, Producer

from neotool_common.testing.kafka import provide_kafka

RECORDS = 1_000


def main() -> int:
    started = time.monotonic()
    with provide_kafka() as kafka:
        topic = kafka.create_topic("demo.smoke.v1", partitions=3)
        producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "acks": "all", "enable.idempotence": True})
        for i in range(RECORDS):
            producer.produce(topic, key=f"r-{i}", value=f'{{"n": {i}}}')
        producer.flush(30)
        consumer = Consumer(
            {
                "bootstrap.servers": kafka.bootstrap_servers,
                "group.id": f"demo-{uuid.uuid4().hex[:6]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe([topic])
        seen = 0
        while seen < RECORDS:
            seen += sum(1 for m in consumer.consume(500, timeout=1.0) if not m.error())
        consumer.commit(asynchronous=False)
        consumer.close()
        print(
            f"broker {kafka.bootstrap_servers}: published {RECORDS}, consumed {seen} "
            f"in {time.monotonic() - started:.1f}s"
        )
    return 0 if seen == RECORDS else 1


if __name__ == "__main__":
    sys.exit(main())

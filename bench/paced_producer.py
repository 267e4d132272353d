"""A producer at a fixed rate for the latency runs: ``python -m bench.paced_producer --rate 5000 --count 50000``.

Each payload carries ``sent_ns``, the wall clock just before ``produce()``; the consumer side takes its
latency as the wall clock in ``process()`` minus that. Producer settings are the platform standard's (§4.3).
"""

from __future__ import annotations

import argparse
import time

from confluent_kafka import Producer

from neotool_common.producing.envelope import build_envelope, encode_envelope, new_batch_id

TICK_S = 0.001


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--rate", type=float, required=True, help="records per second")
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args()
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": "zstd",
            "linger.ms": 5,
        }
    )
    batch_id = new_batch_id()
    start = time.perf_counter()
    sent = 0
    while sent < args.count:
        due = min(args.count, int((time.perf_counter() - start) * args.rate) + 1)
        while sent < due:
            record_id = f"lat-{sent:09d}"
            payload = {"routing_number": "021000021", "name": "Springfield Savings Bank", "sent_ns": time.time_ns()}
            envelope = build_envelope(payload, record_id=record_id, batch_id=batch_id)
            producer.produce(args.topic, value=encode_envelope(envelope), key=record_id.encode(), partition=0)
            sent += 1
        producer.poll(0)
        time.sleep(TICK_S)
    if producer.flush(30):
        raise SystemExit("paced producer: records left unsent")


if __name__ == "__main__":
    main()

"""Variant 5: FastStream's Kafka subscriber (confluent-kafka backend), a no-op handler, JSON decoding.

FastStream's defaults otherwise (``AckPolicy.ACK_FIRST``: librdkafka's auto-commit). Its per-message
"Received"/"Processed" lines are logged at DEBUG, below the INFO logger level: that is FastStream's own switch
for quiet high-volume subscribers, and the runner logs no line per record either.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from faststream.confluent import KafkaBroker

from bench.meter import Meter, parse_variant_args


def main() -> None:
    args = parse_variant_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    meter = Meter()
    done = asyncio.Event()
    broker = KafkaBroker(args.bootstrap, log_level=logging.DEBUG)
    count = 0

    @broker.subscriber(args.topic, group_id=args.group, auto_offset_reset="earliest")
    async def handle(body: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        if count == 1:
            if not isinstance(body, dict):
                raise TypeError(f"FastStream handed over {type(body).__name__}, not the decoded JSON object")
            meter.first(1)
        if count == args.expected:
            meter.last(count)
            done.set()

    async def run() -> None:
        async with broker:
            await broker.start()
            await done.wait()

    asyncio.run(run())
    meter.write(args.out, "faststream", count)


if __name__ == "__main__":
    main()

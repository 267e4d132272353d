"""The ``neotool-kafka`` command: run a local cluster in the foreground, or print the broker jars' classpath."""

from __future__ import annotations

import argparse
import signal

from neotool_common.testing.kafka.cluster import LocalKafkaCluster
from neotool_common.testing.kafka.jars import kafka_classpath

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="neotool-kafka", description="A local Apache Kafka (KRaft) for development")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start a cluster and keep it running until Ctrl+C or SIGTERM")
    run.add_argument("--nodes", type=int, default=1)
    run.add_argument("--port", type=int, help="the (first) broker's port, kept across restarts; default: a free one")
    sub.add_parser("classpath", help="resolve the broker jars and print their classpath")
    args = parser.parse_args(argv)
    if args.command == "classpath":
        print(kafka_classpath())
        return 0
    stop = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with LocalKafkaCluster(args.nodes, port=args.port) as cluster:
        # Ready to paste: consumers and neotool-dlq read KAFKA_BROKERS.
        print(f"export KAFKA_BROKERS={cluster.bootstrap_servers}", flush=True)
        print(f"# logs: {cluster.workdir}; stop with Ctrl+C", flush=True)
        while not stop:
            signal.pause()
    return 0

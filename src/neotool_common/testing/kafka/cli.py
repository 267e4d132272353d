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
    with LocalKafkaCluster(args.nodes) as cluster:
        print(f"KAFKA_BOOTSTRAP_SERVERS={cluster.bootstrap_servers}", flush=True)
        print(f"logs: {cluster.workdir}", flush=True)
        while not stop:
            signal.pause()
    return 0

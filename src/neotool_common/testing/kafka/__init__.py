"""A real Apache Kafka broker (KRaft mode) for tests, the demo and the benchmarks.

Where a broker comes from, in order:

1. ``NEOTOOL_TEST_KAFKA_BROKERS`` is set: that cluster is used as it is (``KAFKA_BROKERS``, which the
   consumers read, is ignored: the tests never run against a cluster exported for other reasons).
2. A Docker engine answers: testcontainers' Kafka module starts one.
3. Otherwise the broker jars are resolved from Maven Central with the machine's ``mvn`` (cached under
   ``~/.cache/neotool-common``), KRaft storage is formatted in a temporary folder, and one node or an
   N-node cluster is started with the machine's Java (17+) on 127.0.0.1 and free ports.

Every node runs in its own JVM (:mod:`~.cluster`); the jars come from :mod:`~.jars`, the resolution order
lives in :mod:`~.provider`, the command line in :mod:`~.cli`.

Command line::

    python -m neotool_common.testing.kafka run [--nodes 3] [--port 9092]   # prints: export KAFKA_BROKERS=…
    python -m neotool_common.testing.kafka classpath           # resolve and print the jars' classpath
"""

from __future__ import annotations

from neotool_common.testing.kafka.cli import main
from neotool_common.testing.kafka.cluster import BrokerNode, LocalKafkaCluster, free_port
from neotool_common.testing.kafka.endpoint import TEST_GROUP_SETTINGS, KafkaEndpoint
from neotool_common.testing.kafka.jars import KAFKA_VERSION, cache_dir, kafka_classpath
from neotool_common.testing.kafka.provider import provide_kafka

__all__ = [
    "KAFKA_VERSION",
    "TEST_GROUP_SETTINGS",
    "BrokerNode",
    "KafkaEndpoint",
    "LocalKafkaCluster",
    "cache_dir",
    "free_port",
    "kafka_classpath",
    "main",
    "provide_kafka",
]

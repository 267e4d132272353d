"""The public surface is exactly what ``__all__`` says, and every name in it resolves."""

from __future__ import annotations

import importlib

import pytest

import neotool_common

MODULES = [
    "neotool_common",
    "neotool_common.consumer_base",
    "neotool_common.errors",
    "neotool_common.deadletter.headers",
    "neotool_common.config.connection",
    "neotool_common.config.settings",
    "neotool_common.records.message",
    "neotool_common.observability.metrics",
    "neotool_common.observability.logs",
    "neotool_common.observability.redaction",
    "neotool_common.observability.rendering",
    "neotool_common.observability.traceparent",
    "neotool_common.producing.producer",
    "neotool_common.producing.headers",
    "neotool_common.producing.ledger",
    "neotool_common.producing.protocols",
    "neotool_common.policies.throughput",
    "neotool_common.concurrency.dispatch",
    "neotool_common.concurrency.dispatcher",
    "neotool_common.concurrency.thread_pool",
    "neotool_common.concurrency.event_loop",
    "neotool_common.concurrency.chains",
    "neotool_common.consumer.workers",
    "neotool_common.testing.kafka",
    "neotool_common.testing.kafka.jars",
    "neotool_common.testing.kafka.endpoint",
    "neotool_common.testing.kafka.cluster",
    "neotool_common.testing.kafka.provider",
    "neotool_common.testing.kafka.cli",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_resolve(name: str) -> None:
    module = importlib.import_module(name)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert missing == []


def test_package_exports_every_public_name_it_imports() -> None:
    public = {n for n in vars(neotool_common) if not n.startswith("_")}
    submodules = {n for n in public if isinstance(getattr(neotool_common, n), type(neotool_common))}
    assert set(neotool_common.__all__) == public - submodules


def test_runner_is_importable_from_the_standard_path() -> None:
    from neotool_common.consumer_base import KafkaConsumerRunner  # noqa: PLC0415 - the path is the contract

    assert KafkaConsumerRunner is neotool_common.KafkaConsumerRunner

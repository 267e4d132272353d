"""The runner's lock-free histogram writes what prometheus_client's Histogram writes for the same observations."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from neotool_common.observability.histogram import FastHistogram

NAME = "neotool_consumer_processing_seconds"
LABELS = ("topic", "group")
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 4 * 3600)
# Multiples of 1/1024 sum exactly in any order; among them values equal to a bound (0.25, 1, 60, ...), which
# count in that bound's bucket, one below the first bound, and some above the last one (+Inf only).
VALUES = [0.0, 1 / 4096, 1 / 1024, 3 / 1024, 0.25, 0.5, 1.0, 2.5, 2.5 + 1 / 1024, 5.0, 10.0, 30.0, 60.0, 61.0, 15_000.0]
SERIES = {("bank.v1", "g"): VALUES * 3, ("bank.v2", "g"): [1 / 4096] * 7 + [0.125]}


def exposition(registry: CollectorRegistry) -> list[str]:
    # prometheus_client also writes a _created sample per series, which the runner's histograms leave out.
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def reference() -> list[str]:
    registry = CollectorRegistry()
    histogram = Histogram(NAME, "Duration of process()", LABELS, buckets=BUCKETS, registry=registry)
    for labels, values in SERIES.items():
        for value in values:
            histogram.labels(*labels).observe(value)
    return exposition(registry)


def fast(record: str) -> list[str]:
    registry = CollectorRegistry()
    histogram = FastHistogram(NAME, "Duration of process()", LABELS, BUCKETS)
    registry.register(histogram)
    shuffled = random.Random(7)
    for labels, values in SERIES.items():
        child = histogram.child(*labels)
        for value in shuffled.sample(values, len(values)):
            if record == "observe":
                child.observe(value)
            else:
                child.defer(value)
                if shuffled.random() < 0.2:
                    histogram.flush()  # batches of any size, some of a single value
    histogram.flush()
    return exposition(registry)


def test_observed_values_are_exposed_as_prometheus_client_exposes_them() -> None:
    assert fast("observe") == reference()


def test_deferred_values_once_flushed_are_exposed_as_prometheus_client_exposes_them() -> None:
    assert fast("defer") == reference()


def test_deferred_values_count_only_once_flushed() -> None:
    registry = CollectorRegistry()
    histogram = FastHistogram(NAME, "Duration of process()", LABELS, BUCKETS)
    registry.register(histogram)
    child = histogram.child("bank.v1", "g")
    child.defer(0.0001)
    child.defer(0.75)
    labels = {"topic": "bank.v1", "group": "g"}

    def sample(suffix: str, **extra: str) -> float | None:
        return registry.get_sample_value(NAME + suffix, {**labels, **extra})

    assert sample("_count") == 0
    histogram.flush()
    assert (sample("_count"), sample("_sum")) == (2, 0.7501)
    assert (sample("_bucket", le="0.0005"), sample("_bucket", le="0.5"), sample("_bucket", le="1.0")) == (1, 1, 2)
    histogram.flush()
    assert sample("_count") == 2, "a value is counted once"

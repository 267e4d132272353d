"""A labelled Prometheus histogram written by one thread, without locks, cheap enough for every record.

``prometheus_client``'s ``Histogram.observe`` takes a lock and searches the buckets in Python; the runner's
per-record path observes two histograms per record. Here a value is either counted at once (:meth:`observe`,
a bisect and two additions) or, on the per-record path, only appended (:meth:`defer`) and counted with the
rest of its batch by :meth:`FastHistogram.flush`, on the same thread, once the batch is handled. The
exposition is the one ``prometheus_client`` writes for the same observations: names, labels, buckets (``le``
as floats, ``+Inf`` last), cumulative counts and the sum.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence

from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["FastHistogram", "HistogramChild"]


class FastHistogram(Collector):
    """A labelled histogram for a single writer thread: ``child(*labels).observe(v)`` without locks.

    Scrapes read the counts while the writer updates them; a scrape can see a sum one observation ahead of
    its count, which Prometheus' rate() functions tolerate. Deferred values are seen once flushed.
    """

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(float(bound) for bound in buckets)  # float against float compares fastest
        self._children: dict[tuple[str, ...], HistogramChild] = {}

    def child(self, *labelvalues: str) -> HistogramChild:
        found = self._children.get(labelvalues)
        if found is None:
            found = self._children[labelvalues] = HistogramChild(self.bounds)
        return found

    def flush(self) -> None:
        """Count every child's deferred values (on the writer thread)."""
        for child in self._children.values():
            if child.deferred:
                child.flush()

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, child in list(self._children.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*self.bounds, float("inf")), list(child.counts), strict=True):
                cumulative += count
                buckets.append((_le(bound), cumulative))
            family.add_metric(list(labels), buckets, child.total)
        yield family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class HistogramChild:
    """One label set's bucket counts (``counts[i]`` holds the values in ``(bounds[i-1], bounds[i]]``) and sum."""

    __slots__ = ("bounds", "counts", "defer", "deferred", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.deferred: list[float] = []
        self.defer = self.deferred.append  # bound once: a value to count at the next flush()

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def flush(self) -> None:
        """Count the deferred values: one pass when all fall in the first bucket, else a sort and a bisect a bucket."""
        values = self.deferred
        if not values:
            return
        self.total = sum(values, self.total)  # in the order observed, as observe() adds them
        counts, bounds, size = self.counts, self.bounds, len(values)
        if max(values) <= bounds[0]:
            counts[0] += size
        else:
            values.sort()
            below = 0
            for index, bound in enumerate(bounds):
                upto = bisect_right(values, bound, below)
                counts[index] += upto - below
                below = upto
                if below == size:
                    break
            counts[-1] += size - below
        values.clear()  # in place: ``defer`` is bound to this list

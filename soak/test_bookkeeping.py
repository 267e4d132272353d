"""The nemesis's P when the producer's acknowledgement carries no offset (``Traffic.place``): no broker."""

from __future__ import annotations

import random

import pytest

from neotool_common.testing.harness import ReadRecord
from soak.nemesis.workload import Traffic, WorkloadPlan, plan_records


@pytest.mark.soak_quick
def test_an_ack_without_an_offset_is_placed_where_its_partition_has_the_record_and_dropped_if_it_is_not() -> None:
    stored, never_stored = plan_records(random.Random(1), "p", 2, 3, WorkloadPlan())
    traffic = Traffic(unplaced=[("plain", stored), ("plain", never_stored)])
    log = [ReadRecord(stored.partition, 41, stored.key.encode(), stored.value, {}, 0)]

    traffic.place(lambda topic: log if topic == "plain" else [])

    assert traffic.acked == {("plain", stored.partition, 41): stored}
    assert (traffic.unplaced_placed, traffic.unplaced_missing, traffic.unplaced) == (1, 1, [])

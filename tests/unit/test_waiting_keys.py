"""WaitingKeys: which source offsets of a key wait in the tiers, and the newest one below a given offset."""

from __future__ import annotations

import random

from neotool_common.consumer.tiers.keys import Place, WaitingKeys

SOURCE = ("bank.v1", 0, b"k")
NEVER = 1 << 62


def newest_below(model: dict[int, Place], offset: int) -> Place | None:
    below = [o for o in model if o < offset]
    return model[max(below)] if below else None


def test_the_leader_is_the_newest_waiting_record_below_the_offset_through_any_order_of_entries_and_exits() -> None:
    rng = random.Random(11)
    keys = WaitingKeys()
    model: dict[int, Place] = {}
    for step in range(5000):
        offset = rng.randrange(200)
        action = rng.random()
        if action < 0.5:  # in from the source or on from another tier (an offset already waiting keeps its place)
            place = Place(rng.randrange(3), step)
            keys.entered(SOURCE, offset, place.tier, place.due_ms, NEVER)
            model[offset] = place
        elif action < 0.8:
            keys.left(SOURCE, offset)
            model.pop(offset, None)
        assert keys.leader(SOURCE, offset, 0) == newest_below(model, offset), step
        assert (SOURCE in keys.waiting) == bool(model), "a key waits while one of its records does, and only then"
        if model:
            assert keys.waiting[SOURCE].offsets == sorted(model)


def test_a_hot_key_with_thousands_waiting_answers_from_its_ordered_offsets() -> None:
    keys = WaitingKeys()
    for offset in range(0, 20_000, 2):
        keys.entered(SOURCE, offset, 1, offset, NEVER)
    assert keys.leader(SOURCE, 20_001, 0) == Place(1, 19_998)
    assert keys.leader(SOURCE, 7, 0) == Place(1, 6)
    assert keys.leader(SOURCE, 0, 0) is None
    keys.left(SOURCE, 19_998)
    assert keys.leader(SOURCE, 20_001, 0) == Place(1, 19_996)


def test_an_expired_key_no_longer_waits() -> None:
    keys = WaitingKeys()
    keys.entered(SOURCE, 5, 1, 100, expires_ms=1_000)
    assert keys.leader(SOURCE, 9, now_ms=999) == Place(1, 100)
    assert keys.leader(SOURCE, 9, now_ms=1_000) is None
    assert len(keys) == 0

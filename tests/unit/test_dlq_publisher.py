"""DeadLetterPublisher: a DLQ copy is stamped with the time it was written, not the source record's timestamp."""

from __future__ import annotations

from neotool_common.deadletter.publisher import DeadLetter, DeadLetterPublisher, DlqPolicy
from neotool_common.testing.fakes import FakeProducer

NOW_S = 1_796_000_000.25  # the runner's wall clock when it dead-letters the record
THIRTY_DAYS_AGO_MS = int(NOW_S * 1000) - 30 * 86_400_000


class Clock:
    def monotonic(self) -> float:
        return 100.0

    def time(self) -> float:
        return NOW_S


def test_the_dlq_copy_is_stamped_now_and_the_source_timestamp_stays_in_its_header() -> None:
    producer = FakeProducer(hold=True)
    publisher = DeadLetterPublisher(producer, DlqPolicy(), Clock(), lambda letter, error: None)
    headers = [("dlq.original.timestamp", str(THIRTY_DAYS_AGO_MS).encode())]
    letter = DeadLetter("bank.v1", 0, 7, b"k", b"v", THIRTY_DAYS_AGO_MS, headers, "poison", 1, lambda _: None)

    publisher.send(letter)

    (produced,) = producer.log
    assert produced.topic == "bank.v1.dlq"
    assert produced.timestamp == int(NOW_S * 1000), "retention of the DLQ copy counts from the dead-lettering"
    assert produced.headers == headers, "the source record's timestamp is kept in dlq.original.timestamp"

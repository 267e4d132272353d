"""What became of published records: acknowledgements, per-flush counts, and the error for unspooled failures."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaError

from neotool_common.errors import NeotoolError

__all__ = ["Acknowledgement", "DeliveryError", "DeliveryReport", "FailedDelivery", "describe_error"]


@dataclass(frozen=True)
class Acknowledgement:
    """A record the broker acknowledged (with ``acks=all``: written to every in-sync replica)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None


@dataclass(frozen=True)
class FailedDelivery:
    """A record that finally failed and is in no spool: the caller must act on it."""

    topic: str
    key: bytes | None
    error: str


@dataclass(frozen=True)
class DeliveryReport:
    """Outcomes since the previous report (or, from :attr:`EnvelopeProducer.totals`, since the start).

    ``failed`` counts every final failure, spooled or not; ``spooled`` those now safe in the spool;
    ``pending`` records still waiting for the broker's answer. Re-sends are not counted here.
    """

    delivered: int = 0
    failed: int = 0
    spooled: int = 0
    pending: int = 0

    @property
    def unspooled(self) -> int:
        """Final failures that no spool holds: :meth:`EnvelopeProducer.flush` raised for them."""
        return self.failed - self.spooled


class DeliveryError(NeotoolError):
    """Records finally failed and are in no spool. ``failures`` names them; ``report`` holds the counts."""

    def __init__(self, report: DeliveryReport, failures: tuple[FailedDelivery, ...]) -> None:
        self.report = report
        self.failures = failures
        topics = ", ".join(sorted({failure.topic for failure in failures}))
        super().__init__(f"{len(failures)} record(s) to {topics} not delivered and not spooled: {failures[0].error}")


def describe_error(error: object) -> str:
    """A delivery error as logs and :class:`FailedDelivery` show it: librdkafka's name and text when it has them."""
    if isinstance(error, KafkaError):
        return f"{error.name()}: {error.str()}"
    return str(error)

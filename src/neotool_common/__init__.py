"""neotool-common: the runtime every Kafka consumer of the batch-data platform is built on.

Start at :class:`~neotool_common.consumer_base.KafkaConsumerRunner`; README.md has the whole tour.
"""

from neotool_common.config.connection import KafkaConnection, Secret
from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer_base import KafkaConsumerRunner
from neotool_common.deadletter.circuit import CircuitBreakerPolicy
from neotool_common.deadletter.headers import DlqReason, dlq_topic_for
from neotool_common.deadletter.publisher import DlqPolicy
from neotool_common.errors import (
    CircuitOpenError,
    ConfigurationError,
    DeadLetterError,
    DecodeError,
    InvalidRecordError,
    NeotoolError,
    PoisonMessageError,
    SchemaValidationError,
)
from neotool_common.policies.commit import CommitPolicy
from neotool_common.policies.retry import RetryPolicy
from neotool_common.policies.throughput import Ordering, ThroughputPolicy
from neotool_common.producing.envelope import build_envelope, encode_envelope, new_batch_id
from neotool_common.producing.producer import EnvelopeProducer
from neotool_common.records.message import Message

__all__ = [
    "CircuitBreakerPolicy",
    "CircuitOpenError",
    "CommitPolicy",
    "ConfigurationError",
    "DeadLetterError",
    "DecodeError",
    "DlqPolicy",
    "DlqReason",
    "EnvelopeProducer",
    "InvalidRecordError",
    "KafkaConnection",
    "KafkaConsumerRunner",
    "Message",
    "NeotoolError",
    "Ordering",
    "PoisonMessageError",
    "RetryPolicy",
    "RunnerSettings",
    "SchemaValidationError",
    "Secret",
    "ThroughputPolicy",
    "build_envelope",
    "dlq_topic_for",
    "encode_envelope",
    "new_batch_id",
]

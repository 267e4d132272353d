"""The retry tiers of one runner, put together for the engine: the gate its batches hand records to."""

from __future__ import annotations

from collections.abc import Callable

from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer.context import RunContext
from neotool_common.consumer.deadletters import DeadLetters
from neotool_common.consumer.flow import PauseReason
from neotool_common.consumer.handlers import Handlers
from neotool_common.consumer.partition import PartitionState
from neotool_common.consumer.retries import Retries
from neotool_common.consumer.tiers.gate import Handle, TierGate
from neotool_common.consumer.tiers.keys import WaitingKeys
from neotool_common.consumer.tiers.topology import TierMap
from neotool_common.consumer.tiers.writes import TierWrites
from neotool_common.errors import ConfigurationError

__all__ = ["check_key_order", "gate_for"]


def gate_for(
    ctx: RunContext, retries: Retries, dead_letters: DeadLetters, handle: Handle, redact: Callable[[str], str] = str
) -> Handle:
    """``handle`` itself when the group has no tiers; else the gate in front of it, tier writes wired in."""
    policy = ctx.settings.retry_topics
    if not policy.enabled:
        return handle
    tiers = TierMap(ctx.settings)
    keys = WaitingKeys() if policy.key_order else None
    writes = TierWrites(ctx, dead_letters, tiers, keys, redact)
    dead_letters.tiers = writes

    def hold(state: PartitionState, offset: int, wait_s: float) -> None:
        retries.hold(state, offset, wait_s, PauseReason.RETRY_DUE)

    return TierGate(ctx, tiers, hold, writes, keys, handle).handler()


def check_key_order(settings: RunnerSettings, handlers: Handlers) -> None:
    """The key-order option follows keys on the poll thread: it needs the sequential runner."""
    parallel = settings.throughput.max_concurrency > 1 or handlers.process_batch is not None or handlers.is_async
    if settings.retry_topics.key_order and parallel:
        raise ConfigurationError(
            "RETRY_TOPIC_KEY_ORDER", "needs the sequential runner (MAX_CONCURRENCY=1, no process_batch(), no async)"
        )

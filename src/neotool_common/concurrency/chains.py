"""Ordering chains: which handed-over records may run now, and which must wait for an earlier one.

Each record joins the *chain* of its ordering key: its partition (``ordering=partition``), its partition and
key (``key``; a record without a key waits for nothing), or none (``unordered``). A chain runs one unit at a
time: a worker *claims* it, takes records from its head, and *releases* it when they are done, after which its
next records are ready for any worker. :class:`Chains` holds no lock; the dispatcher holds one around each call.

Also here: the :class:`Work` handed over, the :class:`Lane` of an assigned partition, and the
:class:`Completion` a worker reports back.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from enum import Enum
from typing import Any

from neotool_common.policies.throughput import Ordering
from neotool_common.records.message import Message

__all__ = ["Chains", "Completion", "Lane", "Outcome", "Work"]


class Outcome(Enum):
    OK = "ok"
    DEAD = "dead"  # to be dead-lettered, with ``reason``, ``error`` and ``attempts``
    ABANDONED = "abandoned"  # its lane was halted before it finished: it will be redelivered
    FATAL = "fatal"  # a BaseException that stops the runner
    RETRY = "retry"  # not final: the record is tried again after ``backoff`` seconds
    SPLIT = "split"  # not final: the batch failed, its records are run one by one


class Lane:
    """One assigned partition's share. ``halted`` is read by workers; the counters belong to the poll thread."""

    __slots__ = ("halted", "reported", "revoked", "state", "submitted")

    def __init__(self, state: Any) -> None:
        self.state = state
        self.halted = threading.Event()
        self.revoked = False  # completions arriving after this are ignored: the new owner redelivers
        self.submitted = 0
        self.reported = 0

    @property
    def outstanding(self) -> int:
        return self.submitted - self.reported


class Work:
    """One record handed to the workers. ``raw`` and ``received`` are the poll thread's, carried back to it."""

    __slots__ = ("alone", "chain", "lane", "message", "raw", "received", "retry_in")

    def __init__(self, lane: Lane, message: Message, raw: Any, received: float) -> None:
        self.lane = lane
        self.message = message
        self.raw = raw
        self.received = received
        self.chain: Hashable = None  # its ordering key, once queued
        self.alone = False  # its batch failed, or it is to be retried: run it by itself
        self.retry_in = 0.0  # its first attempt failed on the poll thread: retry it after this backoff


class Completion:
    """What became of ``works``. ``durations`` holds one handler time per record (OK), or ``duration`` one in all."""

    __slots__ = ("attempts", "backoff", "duration", "durations", "error", "outcome", "reason", "works")

    def __init__(
        self,
        outcome: Outcome,
        works: Sequence[Work],
        attempts: int = 1,
        duration: float = 0.0,
        error: BaseException | None = None,
        reason: str = "",
        backoff: float = 0.0,
        durations: Sequence[float] = (),
    ) -> None:
        self.outcome = outcome
        self.works = works
        self.attempts = attempts
        self.duration = duration
        self.error = error
        self.reason = reason
        self.backoff = backoff
        self.durations = durations


class Chains:
    """The chains, and the ready queue of records that may start now.

    A chain key is in ``_chains`` while the chain has a record running or ready: its first record is in the
    ready queue (unclaimed) or taken by a worker (claimed); the records behind it wait in its deque (None
    while there are none, as for most keys). Records without a chain go straight to the ready queue.
    """

    def __init__(self, ordering: Ordering) -> None:
        self._chains: dict[Hashable, deque[Work] | None] = {}
        self.ready: deque[Work] = deque()
        self.queued = 0  # records waiting, in chains or in the ready queue
        self._key_of: Callable[[Lane, bytes | None], Hashable] = {
            Ordering.PARTITION: _partition_key,
            Ordering.KEY: _record_key,
            Ordering.UNORDERED: _no_key,
        }[ordering]

    def put(self, work: Work) -> None:
        self.queued += 1
        key = work.chain = self._key_of(work.lane, work.message.key)
        if key is None:
            self.ready.append(work)
            return
        chains = self._chains
        if key not in chains:
            chains[key] = None
            self.ready.append(work)
            return
        behind = chains[key]
        if behind is None:
            chains[key] = deque((work,))
        else:
            behind.append(work)

    def take(self, limit: int, into: list[Work], claimed: list[Hashable]) -> None:
        """Move up to ``limit`` ready records into ``into``, claiming their chains; a lone record comes alone.

        The records behind a claimed chain's first one come along while they fit (they run in order anyway).
        """
        ready, chains = self.ready, self._chains
        before = len(into)
        while ready and len(into) < limit:
            alone = ready[0].alone
            if alone and into:
                break
            work = ready.popleft()
            into.append(work)
            key = work.chain
            if key is not None:
                claimed.append(key)
                behind = chains[key]
                while not alone and behind and len(into) < limit and not behind[0].alone:
                    into.append(behind.popleft())
            if alone:
                break
        self.queued -= len(into) - before

    def put_back(self, works: Sequence[Work], alone: bool) -> None:
        """Return taken records to the heads of their (still claimed) chains, or of the ready queue."""
        chains = self._chains
        for work in reversed(works):
            work.alone = alone
            key = work.chain
            if key is None:
                self.ready.appendleft(work)
                continue
            behind = chains[key]
            if behind is None:
                chains[key] = deque((work,))
            else:
                behind.appendleft(work)
        self.queued += len(works)

    @property
    def busy(self) -> dict[Hashable, deque[Work] | None]:
        """The chains with a record queued or running (the same dict for ever; empty when nothing is out)."""
        return self._chains

    def idle(self, lane: Lane, key: bytes | None) -> bool:
        """True when no record of this chain is queued or running. Safe without the lock from the thread that
        puts records: only it adds chains, so a chain it finds absent cannot appear behind its back."""
        chain = self._key_of(lane, key)
        return chain is None or chain not in self._chains

    def release(self, claimed: Iterable[Hashable]) -> None:
        chains = self._chains
        for key in claimed:
            behind = chains[key]
            if behind:
                self.ready.append(behind.popleft())
            else:
                del chains[key]

    def drop(self, lanes: set[Lane]) -> list[Work]:
        """Remove the queued records of ``lanes``; claimed chains stay claimed until their unit is released."""
        dropped = [work for work in self.ready if work.lane in lanes]
        self.ready = deque(work for work in self.ready if work.lane not in lanes)
        unclaimed = {work.chain for work in dropped}
        for key, behind in list(self._chains.items()):
            if behind and behind[0].lane in lanes:
                dropped += behind
                self._chains[key] = None
            if key in unclaimed:
                del self._chains[key]
        self.queued -= len(dropped)
        return dropped


def _partition_key(lane: Lane, key: bytes | None) -> Hashable:
    return lane


def _record_key(lane: Lane, key: bytes | None) -> Hashable:
    return None if key is None else (lane, key)  # a record without a key waits for nothing


def _no_key(lane: Lane, key: bytes | None) -> Hashable:
    return None

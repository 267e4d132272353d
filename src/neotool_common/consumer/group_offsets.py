"""The group's committed offsets, read by a consumer of the group that never joins it, on a thread of its own.

Why not the admin client's ``list_consumer_group_offsets``: in librdkafka 2.16 every coordinator-targeted admin
request shares an error path that can abort the process (``rd_kafka_enq_once_del_source_return: Assertion
eonce->refcnt > 0``, confluentinc/librdkafka#4605) when the connection is cut while it is out. A consumer's
``committed()`` sends the same OffsetFetch through the consumer's own coordinator code instead.

The consumer is given the group's ``group.id`` (an OffsetFetch names its group) and ``group.protocol``, but it is
never subscribed and never assigned, so it is no member, takes no partition and sends no heartbeat; it has no
automatic commit or offset store either, so it never writes an offset. It is made at the first question, used and
closed on :class:`GroupOffsetReader`'s thread (librdkafka's destroy runs where the client is closed), and a
question never blocks the caller: it is answered through a future.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, Final

from confluent_kafka import Consumer, TopicPartition

__all__ = ["NO_OFFSET", "GroupOffsetReader"]

# The group has no committed offset for the partition.
NO_OFFSET: Final = -1
# How long close() waits for an idle thread to close its consumer. A thread that is inside a question is not
# waited for (the question may wait out its timeout on an unreachable broker): it closes its consumer itself once
# the question returns.
_CLOSE_WAIT_S: Final = 10.0

Key = tuple[str, int]
_Question = tuple[list[Key], "Future[dict[Key, int]]"]


class GroupOffsetReader:
    """Answers :meth:`committed_offsets` on its own thread with a consumer of the group that never joins it."""

    def __init__(
        self,
        config: Mapping[str, Any],
        timeout_s: float,
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
    ) -> None:
        self._config = dict(config)
        self._timeout_s = timeout_s
        self._factory = consumer_factory
        self._questions: queue.SimpleQueue[_Question | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._asking = threading.Event()  # set while the thread is inside a question
        self._closed = threading.Event()  # questions still queued then are cancelled, not asked

    def committed_offsets(self, partitions: Sequence[Key]) -> Future[dict[Key, int]]:
        """The group's committed offset of each partition, :data:`NO_OFFSET` where it has none."""
        answer: Future[dict[Key, int]] = Future()
        with self._lock:
            if self._thread is None:
                name = f"group-offsets-{self._config.get('group.id', '')}"
                self._thread = threading.Thread(target=self._run, name=name, daemon=True)
                self._thread.start()
            self._questions.put((list(partitions), answer))
        return answer

    def close(self) -> None:
        """Stop the thread; it closes its consumer (if it made one) on itself before it ends."""
        with self._lock:
            thread, self._thread = self._thread, None
        self._closed.set()
        if thread is not None:
            self._questions.put(None)
            if not self._asking.is_set():
                thread.join(_CLOSE_WAIT_S)

    def _run(self) -> None:
        consumer: Any = None
        try:
            while (question := self._questions.get()) is not None:
                partitions, answer = question
                if self._closed.is_set():
                    answer.cancel()
                if not answer.set_running_or_notify_cancel():
                    continue
                self._asking.set()
                try:
                    if consumer is None:
                        consumer = self._factory(self._config)
                    found = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=self._timeout_s)
                except Exception as exc:  # noqa: BLE001 - handed to the asker with the answer
                    answer.set_exception(exc)
                    continue
                finally:
                    self._asking.clear()
                answer.set_result(
                    {
                        (tp.topic, tp.partition): tp.offset if tp.offset >= 0 else NO_OFFSET
                        for tp in found
                        if tp.error is None
                    }
                )
        finally:
            if consumer is not None:
                consumer.close()

"""The dispatch API in one import: the shared :class:`Dispatcher` base and its two workers.

The base lives in :mod:`~.dispatcher`, the thread pool in :mod:`~.thread_pool`, the asyncio loop in
:mod:`~.event_loop`; the engine and the tests import them from here.
"""

from __future__ import annotations

from neotool_common.concurrency.dispatcher import MAX_UNIT, QUICK_RECORD_S, Dispatcher, check_not_awaitable
from neotool_common.concurrency.event_loop import AsyncDispatcher
from neotool_common.concurrency.thread_pool import ThreadDispatcher

__all__ = ["MAX_UNIT", "QUICK_RECORD_S", "AsyncDispatcher", "Dispatcher", "ThreadDispatcher", "check_not_awaitable"]

"""async def setup() and teardown() run on the event loop of the async handlers, where loop-bound clients live."""

from __future__ import annotations

import asyncio

import pytest

from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer_base import KafkaConsumerRunner
from neotool_common.records.message import Message
from neotool_common.testing.harness import running, wait_until

from .test_runner_loop import Recorder, values


class AsyncHooks(Recorder):
    """Opens a 'client' bound to the running loop in setup(), uses it in process(), closes it in teardown()."""

    def __init__(self, *args: object, **kwargs: str) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.loops: dict[str, asyncio.AbstractEventLoop] = {}
        self.client: asyncio.Queue[int] | None = None
        self.closed_with: int | None = None

    async def setup(self) -> None:
        self.loops["setup"] = asyncio.get_running_loop()
        self.client = asyncio.Queue()  # bound to this loop from its first await on Python 3.10+

    async def process(self, message: Message) -> None:  # type: ignore[override]
        self.loops["process"] = asyncio.get_running_loop()
        assert self.client is not None
        await self.client.put(message.offset)
        self.processed.append((message.partition, message.offset))

    async def teardown(self) -> None:
        self.loops["teardown"] = asyncio.get_running_loop()
        assert self.client is not None
        self.closed_with = self.client.qsize()


def test_async_setup_and_teardown_run_on_the_loop_that_runs_process() -> None:
    runner = AsyncHooks({0: values(5)})
    with running(runner):
        wait_until(lambda: len(runner.processed) == 5, what="every record processed")
    assert runner.loops["setup"] is runner.loops["process"] is runner.loops["teardown"]
    assert runner.closed_with == 5, "teardown saw what process() put into the client setup() made"


class AsyncSetupPlainProcess(KafkaConsumerRunner):
    async def setup(self) -> None:
        pass

    def process(self, message: Message) -> None:
        pass


def test_an_async_setup_beside_a_plain_process_is_refused_at_construction() -> None:
    with pytest.raises(TypeError, match=r"async def setup\(\) needs an async def process\(\)"):
        AsyncSetupPlainProcess(
            RunnerSettings.from_env({"KAFKA_BROKERS": "127.0.0.1:9", "KAFKA_TOPICS": "t", "KAFKA_GROUP_ID": "g"})
        )

"""The loop thread behind the sync API: what is left on it when the caller gives up or stops it."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading

import pytest

from fairq.loopthread import LoopThread


async def _forever(started: threading.Event, finished: list[str]) -> None:
    started.set()
    try:
        await asyncio.sleep(3600)
    finally:
        finished.append("cleaned up")


def test_stop_cancels_what_still_runs_and_lets_it_clean_up(caplog: pytest.LogCaptureFixture) -> None:
    # A send abandoned by Ctrl-C leaves its coroutine on the loop; stopping used to leave it pending,
    # and the garbage collector then logged "Task was destroyed but it is pending!".
    loop = LoopThread("test-loop")
    started, finished = threading.Event(), []
    loop.run(_spawn(started, finished))
    assert started.wait(5)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.stop()
        gc.collect()
    assert finished == ["cleaned up"]
    assert "destroyed" not in caplog.text


async def _spawn(started: threading.Event, finished: list[str]) -> None:
    asyncio.get_running_loop().create_task(_forever(started, finished))


def test_a_wait_that_ends_early_cancels_the_coroutine() -> None:
    loop = LoopThread("test-loop")
    started, finished = threading.Event(), []
    try:
        with pytest.raises(TimeoutError):
            loop.run(_forever(started, finished), timeout=0.05)
        assert started.is_set()
        # Cancelled on the loop, not left running for a caller that has gone.
        assert loop.run(_wait_until(lambda: finished == ["cleaned up"]), timeout=5)
    finally:
        loop.stop()


async def _wait_until(condition: object) -> bool:
    while not condition():  # type: ignore[operator]
        await asyncio.sleep(0.001)
    return True


def test_the_loop_runs_again_after_stop() -> None:
    loop = LoopThread("test-loop")
    assert loop.run(asyncio.sleep(0, result=1)) == 1
    loop.stop()
    assert loop.run(asyncio.sleep(0, result=2)) == 2
    loop.stop()

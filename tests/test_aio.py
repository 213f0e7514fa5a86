"""cancel_and_wait: a helper task is stopped, and the caller's own cancellation survives."""

from __future__ import annotations

import asyncio

import pytest

from bot.aio import cancel_and_wait


async def test_a_helper_is_cancelled_and_the_caller_goes_on() -> None:
    helper = asyncio.create_task(asyncio.sleep(60))
    await asyncio.sleep(0)
    await cancel_and_wait(helper)
    assert helper.cancelled()


async def test_a_loop_cancelled_while_it_stops_its_helper_stops_too() -> None:
    """The shape of a shutdown hang seen in the suite: a loop stopping a helper in a `finally`
    is cancelled at that moment; it must end, not go on to its next pass."""
    passes = 0
    stopping = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopping.set()
            await asyncio.sleep(0.05)  # takes a moment to stop
            raise

    async def loop() -> None:
        nonlocal passes
        while True:
            passes += 1
            helper = asyncio.create_task(stubborn())
            await asyncio.sleep(0)
            try:
                await asyncio.sleep(0.01)
            finally:
                await cancel_and_wait(helper)

    task = asyncio.create_task(loop())
    await stopping.wait()  # pass 1 ended normally and is stopping its helper (50 ms)
    task.cancel()  # the old pattern swallowed exactly this cancellation and began pass 2
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    assert passes == 1

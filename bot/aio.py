"""Small asyncio helpers the rest of the bot shares."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


async def repeat(step: Callable[[], Awaitable[object]], pause: float, what: str) -> None:
    """Forever: `step()`, then sleep `pause` seconds. A failing step is logged as "`what`
    pass failed" and tried again next time (the database may be away); cancellation ends it."""
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s pass failed: %s", what, exc)
        await asyncio.sleep(pause)


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel a helper task and wait for it to end, without swallowing our own cancellation.

    The usual `task.cancel(); with suppress(CancelledError): await task` also swallows the
    CancelledError meant for the caller when the caller is cancelled while it waits: a loop
    shut down at that moment then goes on running, and whoever awaits it waits forever.
    """
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the cancellation was (also) ours

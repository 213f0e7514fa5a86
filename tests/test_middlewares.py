"""Middleware behaviour that no chat shows directly: redelivery and flood bookkeeping."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.types import Update
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import ProcessedUpdate
from bot.middlewares import DbSessionMiddleware


async def _claimed(sessionmaker: async_sessionmaker[AsyncSession]) -> list[int]:
    async with sessionmaker() as s:
        return list((await s.scalars(select(ProcessedUpdate.update_id))).all())


async def test_redelivered_update_is_skipped_and_failed_one_is_released(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    middleware = DbSessionMiddleware(sessionmaker)
    handled: list[int] = []

    async def ok(event: Any, data: dict[str, Any]) -> str:
        handled.append(event.update_id)
        return "done"

    async def broken(event: Any, data: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    assert await middleware(ok, Update(update_id=1), {}) == "done"
    assert await middleware(ok, Update(update_id=1), {}) is None  # a webhook redelivery
    assert handled == [1]
    with pytest.raises(RuntimeError):
        await middleware(broken, Update(update_id=2), {})
    assert await _claimed(sessionmaker) == [1]  # 2 was released: its redelivery will be handled
    assert await middleware(ok, Update(update_id=2), {}) == "done"
    assert handled == [1, 2]

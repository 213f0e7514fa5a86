"""aiogram FSM storage in the database (`fsm_records`), with or without Redis.

A staff member half-way through the /alert wizard keeps their answers across a restart.

Inside an update, reads and writes go through that update's own session (`FsmSessionMiddleware`
puts it in a context variable): the state aiogram reads for every update costs no connection of
its own, and on SQLite a second connection would wait for the update's write lock until the
update ends. Each write commits at once (as Redis would): the handler answers before
the update ends, and the person's next message must already see the new state, not the old
one. Outside an update (tests, CLI) the storage opens its own session.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any

from aiogram import BaseMiddleware
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import (
    BaseStorage,
    DefaultKeyBuilder,
    KeyBuilder,
    StateType,
    StorageKey,
)
from aiogram.types import TelegramObject
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db import repo
from bot.db.models import FsmRecord, utcnow

_current: ContextVar[AsyncSession | None] = ContextVar("safewell_fsm_session", default=None)


class FsmSessionMiddleware(BaseMiddleware):
    """Shares the update's DB session with the FSM storage (register after the session)."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        token = _current.set(data.get("session"))
        try:
            return await handler(event, data)
        finally:
            _current.reset(token)


class DatabaseStorage(BaseStorage):
    """FSM state and data as one row per key in `fsm_records`."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        key_builder: KeyBuilder | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.key_builder = key_builder or DefaultKeyBuilder(with_destiny=True)

    @contextlib.asynccontextmanager
    async def _session(self, write: bool) -> AsyncIterator[AsyncSession]:
        shared = _current.get()
        if shared is not None:
            yield shared
            if write:
                await shared.commit()
            return
        async with self.sessionmaker() as session:
            yield session
            if write:
                await session.commit()

    async def _upsert(self, key: StorageKey, **values: Any) -> None:
        ident = self.key_builder.build(key)
        async with self._session(write=True) as session:
            row = await session.get(FsmRecord, ident)
            if row is None:
                fresh: dict[str, Any] = {"state": None, "data": {}, **values}
                stmt = repo.dialect_insert(session, FsmRecord).values(
                    key=ident, updated_at=utcnow(), **fresh
                )
                await session.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["key"], set_={**values, "updated_at": utcnow()}
                    )
                )
                return
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = utcnow()
            await session.flush()

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        """Store the state (None clears it)."""
        value = state.state if isinstance(state, State) else state
        await self._upsert(key, state=value)

    async def get_state(self, key: StorageKey) -> str | None:
        """The stored state, or None.

        The first read of an update also fetches who is writing (`repo.identify_with_state`)."""
        shared = _current.get()
        if shared is not None and not repo.identified(shared):
            return await repo.identify_with_state(shared, key.user_id, self.key_builder.build(key))
        async with self._session(write=False) as session:
            row = await session.get(FsmRecord, self.key_builder.build(key))
            return row.state if row is not None else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        """Replace the stored data (must be JSON-serialisable)."""
        await self._upsert(key, data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        """A copy of the stored data ({} when none)."""
        async with self._session(write=False) as session:
            row = await session.get(FsmRecord, self.key_builder.build(key))
            return dict(row.data) if row is not None and row.data else {}

    async def close(self) -> None:
        """Nothing to release: the engine belongs to the application."""

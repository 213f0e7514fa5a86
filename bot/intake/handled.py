"""Updates leave the inbox as handled: in their handler's last commit, or many in one commit.

An update leaves the inbox in the same transaction that records it in `processed_updates` and
writes its handler's last rows, so "handled" and the handler's effects agree. Most updates (a
citizen's question: its FAQ log and transcript rows) write nothing but new rows at the end;
`GroupCommit` writes those of every update that ends meanwhile in one transaction. A surge then
costs one commit for many updates instead of one each (on SQLite, one writer instead of dozens
waiting for the lock). Each update still returns only once its own rows are committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, inspect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db import repo
from bot.db.models import InboxUpdate

log = logging.getLogger(__name__)

_Waiting = tuple[int, list[Any], asyncio.Future[None]]  # an update, its rows, its commit

# Updates written together at most (a SQL statement's parameters stay well within limits).
GROUP_MAX = 200


async def leave_inbox(session: AsyncSession, update_ids: Sequence[int]) -> None:
    """The updates leave the inbox and are recorded as handled (committed by the caller)."""
    await session.execute(delete(InboxUpdate).where(InboxUpdate.update_id.in_(update_ids)))
    await repo.claim_updates(session, update_ids)


@dataclass
class InboxDone:
    """Given to the handlers with the update: `mark` adds "left the inbox, handled" to their
    session, to be committed with their last writes (see `DbSessionMiddleware`)."""

    update_id: int
    marked: bool = False

    async def mark(self, session: AsyncSession) -> None:
        await leave_inbox(session, [self.update_id])


class GroupCommit:
    """Writes the last rows of updates that end at about the same time in one transaction."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None

    async def end(self, update_id: int, rows: list[Any]) -> None:
        """Write `rows` (new, detached) and mark the update handled; return once committed."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((update_id, rows, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting(), name="group-commit")
        await done

    async def _write_waiting(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[:GROUP_MAX], self._waiting[GROUP_MAX:]
            try:
                await self._write(group)
            except asyncio.CancelledError:
                # Stopped mid-write (the loop closing): nobody may wait for it forever.
                _settle(group + self._waiting, RuntimeError("group commit stopped"))
                self._waiting = []
                raise
            except Exception as exc:
                if len(group) == 1:
                    _settle(group, exc)
                    continue
                # One update's rows may be what failed (a citizen deleted meanwhile): each on
                # its own, so the others are not handled twice for it.
                log.warning("%d updates not written together (%s); one by one", len(group), exc)
                for item in group:
                    try:
                        await self._write([item])
                    except Exception as one:
                        _settle([item], one)
                    else:
                        _settle([item], None)
            else:
                _settle(group, None)

    async def _write(self, group: list[_Waiting]) -> None:
        rows = [row for _, rows, _ in group for row in rows]
        # Keys the database would give (autoincrement ids) are given again after a rollback.
        keys = [(row, _primary_key(row)) for row in rows]
        try:
            async with self.sessionmaker() as session:
                session.add_all(rows)
                await leave_inbox(session, [update_id for update_id, _, _ in group])
                await session.commit()
        except BaseException:
            for row, key in keys:
                for name, value in key.items():
                    setattr(row, name, value)
            raise


def _primary_key(row: object) -> dict[str, Any]:
    state = inspect(row)
    return {
        attr.key: state.dict.get(attr.key)
        for attr in state.mapper.column_attrs
        if any(column.primary_key for column in attr.columns)
    }


def _settle(group: list[_Waiting], exc: Exception | None) -> None:
    for _, _, done in group:
        if done.done():
            continue
        if exc is None:
            done.set_result(None)
        else:
            done.set_exception(exc)

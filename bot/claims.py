"""Claims on work, kept in the database, so several processes never do the same work at once.

A claim is a row in `work_claims` (a name such as "case:12", the owning process, a lease end),
taken with one atomic statement: insert it, or take it over when its lease ran out or it is
ours already. A process renews the claims it holds while it works, and deletes them when done;
a process that dies (kill -9, a lost machine) stops renewing, and its claims are taken over
once their lease ends. The same statement works on PostgreSQL and SQLite.

An in-process lock comes first (the row alone cannot tell two coroutines of one process apart),
then the row (it tells processes apart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.aio import cancel_and_wait
from bot.db import repo
from bot.db.models import WorkClaim, utcnow

log = logging.getLogger(__name__)

# How often a held claim is renewed, as a share of its lease.
RENEW_SHARE = 1 / 3


def process_identity() -> str:
    """Who holds a claim: host, pid and a random part (a pid is reused after a restart)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Claims:
    """Named claims with leases, shared by every process on the database."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        lease_seconds: float = 15.0,
        *,
        owner: str | None = None,
        poll_seconds: float = 0.05,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.lease = timedelta(seconds=lease_seconds)
        self.owner = owner or process_identity()
        self.poll_seconds = poll_seconds
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, name: str) -> asyncio.Lock:
        """The in-process lock of a claim (held by whoever in this process works on it)."""
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    async def take(self, name: str) -> bool:
        """Take the claim if it is free, expired or ours already; True when we hold it now."""
        now = utcnow()
        async with self.sessionmaker() as session:
            stmt = repo.dialect_insert(session, WorkClaim)
            stmt = stmt.values(name=name, owner=self.owner, until=now + self.lease)
            stmt = stmt.on_conflict_do_update(
                index_elements=["name"],
                set_={"owner": stmt.excluded.owner, "until": stmt.excluded.until},
                where=or_(WorkClaim.until < now, WorkClaim.owner == self.owner),
            ).returning(WorkClaim.name)
            taken = (await session.scalars(stmt)).first()
            await session.commit()
        return taken is not None

    async def renew(self, name: str) -> bool:
        """Push our lease on; False when the claim is no longer ours (it expired and was taken)."""
        async with self.sessionmaker() as session:
            result = await session.execute(
                update(WorkClaim)
                .where(WorkClaim.name == name, WorkClaim.owner == self.owner)
                .values(until=utcnow() + self.lease)
                .returning(WorkClaim.name)
            )
            renewed = result.first() is not None
            await session.commit()
        return renewed

    async def release(self, name: str) -> None:
        """Give the claim back at once (others need not wait for the lease)."""
        async with self.sessionmaker() as session:
            await session.execute(
                delete(WorkClaim).where(WorkClaim.name == name, WorkClaim.owner == self.owner)
            )
            await session.commit()

    async def due(self, name: str) -> datetime | None:
        """When the recurring work `name` is next due (None: never scheduled). Such a row is a
        schedule, not a lease: whichever process holds the work's claim then does it."""
        async with self.sessionmaker() as session:
            return await session.scalar(select(WorkClaim.until).where(WorkClaim.name == name))

    async def schedule(self, name: str, at: datetime) -> None:
        """Record when the recurring work `name` is next due."""
        async with self.sessionmaker() as session:
            stmt = repo.dialect_insert(session, WorkClaim).values(
                name=name, owner=self.owner, until=at
            )
            await session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["name"],
                    set_={"owner": stmt.excluded.owner, "until": stmt.excluded.until},
                )
            )
            await session.commit()

    async def _keep(self, name: str) -> None:
        period = self.lease.total_seconds() * RENEW_SHARE
        while True:
            await asyncio.sleep(period)
            try:
                if not await self.renew(name):
                    log.error("claim %s was lost (taken over after its lease ran out)", name)
                    return
            except Exception as exc:  # the database is away: the next renewal tries again
                log.warning("claim %s not renewed: %s", name, exc)

    @contextlib.asynccontextmanager
    async def hold(self, name: str, wait: float = 0.0) -> AsyncIterator[bool]:
        """Hold the claim for the block: yields True when held, False when another process
        (or, with `wait` 0, another task here) has it and it did not come free within `wait`
        seconds. The lease is renewed while the block runs, and released after it."""
        lock = self.lock(name)
        if wait <= 0 and lock.locked():
            yield False
            return
        async with lock:
            deadline = asyncio.get_running_loop().time() + wait
            pause = self.poll_seconds
            try:
                while not await self.take(name):
                    if asyncio.get_running_loop().time() + pause > deadline:
                        yield False
                        return
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.5)
            except asyncio.CancelledError:
                # Cancelled as the claim was being taken: it may be ours in the database
                # already. Give it back (only our own row is deleted), then stop.
                with contextlib.suppress(Exception):
                    await self.release(name)
                raise
            keeper = asyncio.create_task(self._keep(name), name=f"claim-{name}")
            try:
                yield True
            finally:
                try:
                    await cancel_and_wait(keeper)  # no renewal may land after the release
                finally:
                    # Released even when the holder is being cancelled (a shutdown): else the
                    # next process waits for the lease to run out.
                    try:
                        await self.release(name)
                    except Exception as exc:  # it expires on its own
                        log.warning("claim %s not released: %s", name, exc)

"""Engine and session factory; SQLite gets the pragmas that make it safe for a bot."""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Executable, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction

# Set in a session's info while its transaction has written something (see `wrote`).
_WROTE = "safewell_wrote"
# Set while the session's transaction holds a connection (a BEGIN went, or goes, to the database).
_CONNECTED = "safewell_connected"


def create_engine(url: str, *, echo: bool = False, pool_size: int = 5) -> AsyncEngine:
    """An async engine for SQLite (file created with its folder) or PostgreSQL.

    `pool_size`: connections kept open, on either database (10 more may open under load;
    those are closed again when returned). Size it to the connections in use at once in a
    surge: below that, every update opens and closes a connection, and asyncpg prepares each
    statement anew on it (a sixth of an update's CPU in the load benchmark at the default 5).
    """
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["pool_size"] = pool_size  # (a database in memory has one static connection)
        # One update may wait on another's write; give SQLite time instead of "database is locked".
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_size"] = pool_size
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


async def database_ok(engine: AsyncEngine) -> bool:
    """True when the database answers a trivial query."""
    from sqlalchemy import text

    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


@event.listens_for(Session, "do_orm_execute")
def _statement(state: ORMExecuteState) -> None:
    if not state.is_select:
        state.session.info[_WROTE] = True


@event.listens_for(Session, "after_flush")
def _flushed(session: Session, _flush: UOWTransaction) -> None:
    session.info[_WROTE] = True


@event.listens_for(Session, "after_begin")
def _connected(session: Session, _transaction: SessionTransaction, _connection: Any) -> None:
    session.info[_CONNECTED] = True


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_WROTE, None)
        session.info.pop(_CONNECTED, None)


def detachable(row: object) -> bool:
    """Whether a new row can be written by another session: it refers to other rows by their
    ids only (a related object set on it would be pulled into that session too)."""
    state = inspect(row)
    return not any(rel.key in state.dict for rel in state.mapper.relationships)


def wrote(session: AsyncSession) -> bool:
    """Whether the session's transaction has written, or would write at commit, anything but
    new rows (a statement, a flush, a changed or deleted row)."""
    sync = session.sync_session
    return bool(sync.info.get(_WROTE) or sync.dirty or sync.deleted)


# Per engine, its autocommit view (same pool): see `read`.
_AUTOCOMMIT: weakref.WeakKeyDictionary[Engine, AsyncEngine] = weakref.WeakKeyDictionary()


async def read(
    session: AsyncSession, statement: Executable, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """Rows of a read the update's session makes before it has a transaction.

    On PostgreSQL it runs outside any transaction (on a connection of the same pool, in
    autocommit): one round trip instead of three (BEGIN, the read, and the COMMIT that ends a
    transaction that wrote nothing), so a question that only reads and then leaves its rows to
    the group commit (`bot.intake.handled`) starts no transaction of its own. Under READ
    COMMITTED a statement sees the same either way: each reads its own snapshot. Rows it loads
    join the session as if read there. Inside a transaction (the session has written, or holds
    locks), with changes the read must see (autoflush), and on SQLite (whose reads cost no
    round trip), it runs in the session.
    """
    bind, sync = session.bind, session.sync_session
    pending = sync.autoflush and (sync.new or sync.dirty or sync.deleted)  # the read would see
    if (
        sync.info.get(_CONNECTED)
        or pending
        or not isinstance(bind, AsyncEngine)
        or bind.dialect.name != "postgresql"
    ):
        return [tuple(row) for row in await session.execute(statement, params)]
    autocommit = _AUTOCOMMIT.get(bind.sync_engine)
    if autocommit is None:
        autocommit = _AUTOCOMMIT[bind.sync_engine] = bind.execution_options(
            isolation_level="AUTOCOMMIT"
        )
    async with AsyncSession(autocommit, expire_on_commit=False) as reader:
        rows = (await reader.execute(statement, params)).all()
    return [
        tuple(
            sync.merge(value, load=False) if hasattr(value, "_sa_instance_state") else value
            for value in row
        )
        for row in rows
    ]


async def end_reading(session: AsyncSession) -> list[Any]:
    """End the session's transaction (its connection goes back to the pool) without writing
    its new rows: they are returned, detached, for a later commit. What else it holds (see
    `wrote`, and new rows that are not `detachable`) is committed as usual."""
    rows = [row for row in session.new if detachable(row)]
    for row in rows:
        session.expunge(row)
    await session.commit()
    return rows


async def release(session: AsyncSession) -> None:
    """Give the session's connection back before a network call or a long wait: its reads
    end (`end_reading`) and its new rows stay in it, written with a later commit."""
    session.add_all(await end_reading(session))

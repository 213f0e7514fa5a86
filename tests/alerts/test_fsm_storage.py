"""The database FSM storage keeps wizard state across storage instances (a restart)."""

from __future__ import annotations

from pathlib import Path

from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import StorageKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db import repo
from bot.db.models import FsmRecord
from bot.fsm_storage import DatabaseStorage, FsmSessionMiddleware


class Wizard(StatesGroup):
    headline = State()


KEY = StorageKey(bot_id=1, chat_id=42, user_id=42)
OTHER = StorageKey(bot_id=1, chat_id=43, user_id=43)


async def test_state_and_data_survive_a_new_storage(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    storage = DatabaseStorage(sessionmaker)
    assert await storage.get_state(KEY) is None
    assert await storage.get_data(KEY) == {}
    await storage.set_state(KEY, Wizard.headline)
    await storage.set_data(KEY, {"category": "traffic", "districts": ["harbour"]})
    await storage.update_data(KEY, {"severity": "Minor"})
    await storage.close()

    restarted = DatabaseStorage(sessionmaker)
    assert await restarted.get_state(KEY) == "Wizard:headline"
    assert await restarted.get_data(KEY) == {
        "category": "traffic",
        "districts": ["harbour"],
        "severity": "Minor",
    }
    assert await restarted.get_state(OTHER) is None
    await restarted.set_state(KEY, None)
    await restarted.set_data(KEY, {})
    assert await restarted.get_state(KEY) is None
    assert await restarted.get_data(KEY) == {}


async def test_inside_an_update_writes_use_its_session_and_are_visible_at_once(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    storage = DatabaseStorage(sessionmaker)
    middleware = FsmSessionMiddleware()

    async def handler(event: object, data: dict[str, object]) -> None:
        # The update already wrote (as the citizen upsert does): a second connection would
        # wait for SQLite's write lock; the shared session does not.
        session = data["session"]
        assert isinstance(session, AsyncSession)
        await repo.upsert_citizen(
            session, 42, first_name="A", last_name=None, username=None, telegram_language="en"
        )
        await storage.set_state(KEY, Wizard.headline)
        await storage.set_data(KEY, {"step": 1})
        # Before the update ends (and before any reply), the next update already sees it.
        async with sessionmaker() as other:
            row = await other.get(FsmRecord, storage.key_builder.build(KEY))
            assert row is not None and row.state == "Wizard:headline" and row.data == {"step": 1}

    async with sessionmaker() as session:
        await middleware(handler, object(), {"session": session})  # type: ignore[arg-type]
        await session.rollback()
    async with sessionmaker() as session:
        row = (await session.scalars(select(FsmRecord))).one()
        assert row.state == "Wizard:headline" and row.data == {"step": 1}


async def test_with_redis_configured_the_state_is_still_kept_in_the_database(
    db_url: str, tmp_path: Path
) -> None:
    """The update's first read brings the state with the sender's identity: in Redis it would
    cost every update a round trip of its own (and the intake's form check another)."""
    from bot.app import build
    from bot.config import load_settings

    settings = load_settings(
        env_file=None,
        bot={"token": "123456789:AAH-valid_looking_secret_for_tests_only"},
        database={"url": db_url},
        redis={"url": "redis://127.0.0.1:6379/0"},
        intake={"spool_dir": tmp_path / "spool"},
    )
    app = await build(settings, migrate=False)
    try:
        await app.dispatcher.storage.set_state(KEY, Wizard.headline)
        assert await app.intake.forms.get_state(KEY) == "Wizard:headline"
        async with app.sessionmaker() as session:
            row = await session.get(
                FsmRecord, DatabaseStorage(app.sessionmaker).key_builder.build(KEY)
            )
            assert row is not None and row.state == "Wizard:headline"
    finally:
        await app.close()

"""Shared fixtures: every storage test runs on SQLite and on the real PostgreSQL.

Each test gets its own database cloned from a migrated template, so tests never see each
other's rows (`tests.support.databases` says where PostgreSQL comes from and what happens
when it is away). Helpers the tests share live in `tests.support`; conftest files hold fixtures.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.db.migrate import upgrade
from bot.db.session import create_engine, create_sessionmaker

# Before the shared helpers are imported: their asserts explain a failure as the tests' do.
pytest.register_assert_rewrite("tests.support")

from tests.support.databases import (  # noqa: E402
    BACKENDS,
    HOW_TO_ENABLE,
    PG_URL,
    REQUIRE_PG,
    drop_pg_database,
    new_pg_database,
    pg_available,
    pg_exec,
    private_pg_database,
)

if TYPE_CHECKING:
    from bot.demo import Demo


@pytest.fixture(autouse=True)
def _logging_handlers_left_behind() -> Iterator[None]:
    """A test that runs the CLI in-process (`bot.cli.main`) installs a stream handler on the
    root logger, bound to that test's captured stderr; once pytest closes it, every later log
    line in the worker printed "Logging error ... I/O operation on closed file" over the real
    failure. Handlers a test added are removed after it (pytest's own are left to pytest)."""
    root = logging.getLogger()
    before = set(root.handlers)
    level = root.level
    yield
    for handler in root.handlers[:]:
        if handler not in before and not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database; tests clone it."""
    if not pg_available():
        if REQUIRE_PG:
            pytest.fail(HOW_TO_ENABLE)
        pytest.skip(HOW_TO_ENABLE)
    name = f"safewell_tpl_{uuid.uuid4().hex[:8]}"
    asyncio.run(pg_exec(f"CREATE DATABASE {name}"))
    upgrade(make_url(PG_URL).set(database=name).render_as_string(hide_password=False))
    yield name
    drop_pg_database(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; tests copy it."""
    path = tmp_path_factory.mktemp("tpl") / "template.sqlite3"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, private database URL on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "safewell.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    name, url = new_pg_database(request.getfixturevalue("pg_template"))
    yield url
    drop_pg_database(name)


@pytest.fixture
def pg_db_url(pg_template: str) -> Iterator[str]:
    """A migrated, private PostgreSQL database URL (for tests about PostgreSQL itself)."""
    yield from private_pg_database(pg_template)


@pytest.fixture
def another_pg_db_url(pg_template: str) -> Iterator[str]:
    """A second one, for tests that run two processes on separate databases side by side."""
    yield from private_pg_database(pg_template)


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL on each backend (for migration tests)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    request.getfixturevalue("pg_template")  # skips or fails when PostgreSQL is unreachable
    name, url = new_pg_database(None)
    yield url
    drop_pg_database(name)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test database, disposed afterwards."""
    eng = create_engine(db_url)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Session factory on the test database."""
    return create_sessionmaker(engine)


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Demo]:
    """`safewell demo` as a whole (emulator, bot, page) on free loopback ports."""
    from bot.demo import DemoOptions, start_demo

    running = await start_demo(
        DemoOptions(port=0, database_url=f"sqlite+aiosqlite:///{tmp_path / 'demo.sqlite3'}")
    )
    try:
        yield running
    finally:
        await running.stop()

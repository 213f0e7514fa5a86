"""The PostgreSQL server the storage tests run on: each test gets its own database cloned from
a migrated template, so tests never see each other's rows.

PostgreSQL comes from SAFEWELL_TEST_POSTGRES_URL (default: the local server, database `test`).
With no server the PostgreSQL variants skip and say how to enable them, unless
SAFEWELL_REQUIRE_POSTGRES=1 (CI), where an unreachable server is a failure.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import asyncpg
from sqlalchemy.engine import make_url

PG_URL = os.environ.get(
    "SAFEWELL_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REQUIRE_PG = os.environ.get("SAFEWELL_REQUIRE_POSTGRES") == "1"
HOW_TO_ENABLE = (
    "PostgreSQL not reachable at SAFEWELL_TEST_POSTGRES_URL "
    f"({make_url(PG_URL).render_as_string(hide_password=True)}); start a server there, or set "
    "that variable to one, to run the PostgreSQL variants"
)
BACKENDS = ["sqlite", "postgres"]


def plain_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def pg_exec(sql: str) -> None:
    """Run one statement on the server (outside any test database)."""
    conn = await asyncpg.connect(plain_dsn(PG_URL), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_available() -> bool:
    try:
        asyncio.run(pg_exec("SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


def new_pg_database(template: str | None) -> tuple[str, str]:
    """A new database (a copy of `template`, or empty): its name and URL."""
    name = f"safewell_t_{uuid.uuid4().hex[:10]}"
    clause = f" TEMPLATE {template}" if template else ""
    asyncio.run(pg_exec(f"CREATE DATABASE {name}{clause}"))
    return name, make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(name: str) -> None:
    asyncio.run(pg_exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def private_pg_database(template: str) -> Iterator[str]:
    """A copy of the template for one test, dropped afterwards (a fixture's body)."""
    name, url = new_pg_database(template)
    yield url
    drop_pg_database(name)

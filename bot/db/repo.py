"""Small repositories: the queries several services share. They never commit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, delete, exists, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    AuditLog,
    Case,
    Citizen,
    Direction,
    FsmRecord,
    Message,
    ProcessedUpdate,
    Role,
    StaffRole,
    utcnow,
)
from bot.db.session import read


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """A dialect insert that supports ON CONFLICT on both SQLite and PostgreSQL."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


async def claim_updates(session: AsyncSession, update_ids: Sequence[int]) -> int:
    """Record update ids as handled; how many were new (the rest: redeliveries)."""
    if not update_ids:
        return 0
    now = utcnow()
    stmt = dialect_insert(session, ProcessedUpdate).values(
        [{"update_id": update_id, "processed_at": now} for update_id in update_ids]
    )
    result = await session.execute(stmt.on_conflict_do_nothing(index_elements=["update_id"]))
    return int(cast(CursorResult[Any], result).rowcount or 0)


async def release_update(session: AsyncSession, update_id: int) -> None:
    """Forget an update id whose handling failed, so a redelivery is handled."""
    await session.execute(delete(ProcessedUpdate).where(ProcessedUpdate.update_id == update_id))


async def prune_processed_updates(session: AsyncSession, older_than: timedelta) -> int:
    """Forget update ids older than Telegram would ever redeliver."""
    cutoff = utcnow() - older_than
    result = await session.execute(
        delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < cutoff)
    )
    return int(cast(CursorResult[Any], result).rowcount or 0)


# How precisely a citizen's last_seen_at is kept (it is bookkeeping, not a message log).
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


async def upsert_citizen(
    session: AsyncSession,
    user_id: int,
    *,
    first_name: str,
    last_name: str | None,
    username: str | None,
    telegram_language: str | None,
) -> Citizen:
    """Create or refresh a citizen from Telegram's user data; returns the loaded row.

    A citizen seen within `LAST_SEEN_RESOLUTION` with the same profile is only read: a
    surge of messages then costs no write per message for this bookkeeping.
    """
    now = utcnow()
    found = _identity(session, user_id)
    if found is not None and found.citizen is None:
        known = None  # the update's identity read found no row: no need to look again
    else:
        known = await session.get(Citizen, user_id)
    if (
        known is not None
        and known.last_seen_at is not None
        and now - known.last_seen_at < LAST_SEEN_RESOLUTION
        and (known.first_name, known.last_name, known.username, known.telegram_language)
        == (first_name[:128], (last_name or None) and last_name[:128], username, telegram_language)
    ):
        return known
    values = {
        "first_name": first_name[:128],
        "last_name": (last_name or None) and last_name[:128],
        "username": username,
        "telegram_language": telegram_language,
        "last_seen_at": now,
    }
    stmt = dialect_insert(session, Citizen).values(id=user_id, created_at=now, **values)
    stmt = stmt.on_conflict_do_update(index_elements=["id"], set_=values).returning(Citizen)
    # The row as written comes back in the same round trip, refreshing any copy held here.
    citizen = await session.scalar(stmt, execution_options={"populate_existing": True})
    assert citizen is not None
    if found is not None:
        found.citizen = citizen
    return citizen


async def identify(session: AsyncSession, user_id: int) -> tuple[set[Role], Citizen | None]:
    """The roles a Telegram user holds (empty for citizens) and their citizen row, if any, in
    one query. While the caller holds the row, `upsert_citizen` reads it from the session.

    When the update's first read already fetched them (`identify_with_state`), no query."""
    found = _identity(session, user_id)
    if found is not None:
        return set(found.roles), found.citizen
    found_rows = await read(session, _IDENTIFY, {"user": user_id})
    if found_rows:
        citizen, roles, had_case = found_rows[0]
        found = _Identity(user_id, _roles(roles), citizen, bool(had_case))
        session.info[_IDENTITY] = found
        return set(found.roles), citizen
    rows = await session.scalars(_ROLES, {"user": user_id})
    return {Role(r) for r in rows}, None


async def identify_with_state(session: AsyncSession, user_id: int, fsm_key: str) -> str | None:
    """A user's FSM state, with what `identify` needs fetched in the same statement.

    aiogram reads the state first thing in every update (`bot.fsm_storage`); the roles, the
    citizen row and their last texts (`earlier_texts`) come along and wait in the session: one
    round trip, not three."""
    [(citizen, roles, state, had_case, *earlier)] = await read(
        session, _IDENTIFY_WITH_STATE, {"user": user_id, "fsm_key": fsm_key}
    )
    texts = tuple((at, text) for text, at in zip(earlier[::2], earlier[1::2], strict=True) if at)
    session.info[_IDENTITY] = _Identity(user_id, _roles(roles), citizen, bool(had_case), texts)
    return cast(str | None, state)


def identified(session: AsyncSession) -> bool:
    """Whether this session has fetched a user's identity with their state already."""
    return _IDENTITY in session.info


def never_had_case(session: AsyncSession, citizen_id: int) -> bool:
    """Whether the update's identity read found that the citizen never had a case (most of a
    surge's questions): then nothing needs to look for their open one."""
    found = _identity(session, citizen_id)
    return found is not None and not found.had_case


def case_opened(session: AsyncSession, citizen_id: int) -> None:
    """A case of the citizen's was added in this session: `never_had_case` no longer holds."""
    found = _identity(session, citizen_id)
    if found is not None:
        found.had_case = True


def earlier_texts(
    session: AsyncSession, citizen_id: int, since: datetime, limit: int
) -> list[str] | None:
    """The citizen's last texts outside any case since `since`, oldest first, as the update's
    identity read found them; None when it did not fetch enough of them, or the session holds
    new messages not written yet (then the database is asked)."""
    found = _identity(session, citizen_id)
    if found is None or found.earlier is None or limit > EARLIER_TEXTS:
        return None
    if any(isinstance(row, Message) for row in session.new):
        return None
    return [text for at, text in reversed(found.earlier[:limit]) if at >= since]


@dataclass
class _Identity:
    """What the update's first read found about its sender (in the session's info)."""

    user_id: int
    roles: set[Role]
    citizen: Citizen | None
    had_case: bool  # whether the citizen ever had a case
    # Their last texts outside any case, newest first: (written at, text); None: not fetched.
    earlier: tuple[tuple[datetime, str], ...] | None = None


def _identity(session: AsyncSession, user_id: int) -> _Identity | None:
    found = session.info.get(_IDENTITY)
    return found if found is not None and found.user_id == user_id else None


def _roles(listed: str | None) -> set[Role]:
    return {Role(r) for r in (listed or "").split(",") if r}


# Built once: every update runs them (see `identify`).
_IDENTITY = "safewell_identity"
_ROLES = select(StaffRole.role).where(StaffRole.user_id == bindparam("user"))
_ROLE_LIST = (
    select(func.aggregate_strings(StaffRole.role, ","))
    .where(StaffRole.user_id == bindparam("user"))
    .scalar_subquery()
)
_HAD_CASE = exists().where(Case.citizen_id == bindparam("user"))
_IDENTIFY = select(Citizen, _ROLE_LIST, _HAD_CASE).where(Citizen.id == bindparam("user"))
_ONE_ROW = select(literal(1).label("one")).subquery()
# How many of a citizen's last texts the identity read brings (the triage reads two together
# with a new message: a crisis said across several short messages).
EARLIER_TEXTS = 2
_EARLIER = [
    select(column)
    .where(
        Message.citizen_id == bindparam("user"),
        Message.direction == Direction.CITIZEN,
        Message.case_id.is_(None),
        Message.text.is_not(None),
    )
    .order_by(Message.id.desc())
    .offset(n)
    .limit(1)
    .scalar_subquery()
    for n in range(EARLIER_TEXTS)
    for column in (Message.text, Message.created_at)
]
_IDENTIFY_WITH_STATE = (
    select(
        Citizen,
        _ROLE_LIST,
        select(FsmRecord.state).where(FsmRecord.key == bindparam("fsm_key")).scalar_subquery(),
        _HAD_CASE,
        *_EARLIER,
    )
    .select_from(_ONE_ROW)
    .outerjoin(Citizen, Citizen.id == bindparam("user"))
)


async def add_role(
    session: AsyncSession,
    user_id: int,
    role: Role,
    *,
    display_name: str | None = None,
    added_by: int | None = None,
) -> bool:
    """Grant a role; False when the user already had it."""
    existing = await session.get(StaffRole, (user_id, role.value))
    if existing is not None:
        if display_name:
            existing.display_name = display_name
        return False
    session.add(
        StaffRole(user_id=user_id, role=role.value, display_name=display_name, added_by=added_by)
    )
    return True


async def remove_role(session: AsyncSession, user_id: int, role: Role | None = None) -> int:
    """Revoke one role, or every role when role is None; returns how many were removed."""
    stmt = delete(StaffRole).where(StaffRole.user_id == user_id)
    if role is not None:
        stmt = stmt.where(StaffRole.role == role.value)
    result = await session.execute(stmt)
    return int(cast(CursorResult[Any], result).rowcount or 0)


async def display_name(session: AsyncSession, user_id: int | None) -> str | None:
    """A staff member's display name, if one was given (None for no one: an imported alert)."""
    if user_id is None:
        return None
    return await session.scalar(
        select(StaffRole.display_name).where(
            StaffRole.user_id == user_id, StaffRole.display_name.is_not(None)
        )
    )


async def mark_unreachable(session: AsyncSession, citizen_ids: Sequence[int]) -> None:
    """Citizens who blocked the bot or are gone (Telegram answered 403): alerts skip them until
    they write again. Those marked already keep the time they were first found."""
    await session.execute(
        update(Citizen)
        .where(Citizen.id.in_(citizen_ids), Citizen.blocked_bot.is_(False))
        .values(blocked_bot=True, blocked_at=utcnow())
    )


async def list_staff(session: AsyncSession, role: Role | None = None) -> Sequence[StaffRole]:
    """Staff roles ordered by user and role."""
    stmt = select(StaffRole).order_by(StaffRole.user_id, StaffRole.role)
    if role is not None:
        stmt = stmt.where(StaffRole.role == role.value)
    return (await session.scalars(stmt)).all()


def audit(
    session: AsyncSession,
    action: str,
    *,
    actor_id: int | None,
    target_type: str | None = None,
    target_id: str | int | None = None,
    at: datetime | None = None,
    **details: Any,
) -> None:
    """Append one row to the audit log (committed with the caller's unit of work)."""
    session.add(
        AuditLog(
            at=at or utcnow(),
            actor_id=actor_id,
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            details=details,
        )
    )

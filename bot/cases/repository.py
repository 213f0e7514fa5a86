"""The cases' queries: every statement the case service, the forum delivery and the loop run.

Functions of a session; they never commit (the caller owns the unit of work)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy import case as sql_case
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import repo
from bot.db.models import (
    Case,
    CasePriority,
    CaseStatus,
    Citizen,
    Direction,
    Message,
    MessagePair,
    RelayState,
    Role,
    StaffRole,
)
from bot.db.session import read

# Statements every citizen message runs, built once: building and hashing a statement costs
# more Python than the query itself in a surge.
_CLOSED = Case.status == CaseStatus.CLOSED
_ACTIVE_CASE = (
    select(Case)
    .where(
        Case.citizen_id == bindparam("citizen"),
        ~_CLOSED | (Case.closed_at >= bindparam("cutoff")),
    )
    .order_by(sql_case((_CLOSED, 1), else_=0), Case.id.desc())  # open ones first, then latest
    .limit(1)
)
_RECENT_TEXTS = (
    select(Message.text)
    .where(
        Message.citizen_id == bindparam("citizen"),
        Message.direction == Direction.CITIZEN,
        Message.case_id.is_(None),
        Message.text.is_not(None),
        Message.created_at >= bindparam("since"),
    )
    .order_by(Message.id.desc())
    .limit(bindparam("limit"))
)
# Urgent first, then oldest.
_URGENT_FIRST = (Case.priority == CasePriority.NORMAL, Case.id)


async def active_case(session: AsyncSession, citizen_id: int, cutoff: datetime) -> Case | None:
    """The citizen's open or claimed case, else one closed since `cutoff`."""
    return await session.scalar(_ACTIVE_CASE, {"citizen": citizen_id, "cutoff": cutoff})


async def open_case_of(session: AsyncSession, citizen_id: int) -> Case | None:
    """The citizen's latest case that is not closed."""
    return await session.scalar(
        select(Case)
        .where(Case.citizen_id == citizen_id, Case.status != CaseStatus.CLOSED)
        .order_by(Case.id.desc())
        .limit(1)
    )


async def case_by_topic(session: AsyncSession, chat_id: int, thread_id: int) -> Case | None:
    return await session.scalar(
        select(Case)
        .where(Case.forum_chat_id == chat_id, Case.forum_topic_id == thread_id)
        .order_by(Case.id.desc())
        .limit(1)
    )


async def open_cases(session: AsyncSession) -> list[tuple[Case, Citizen | None]]:
    """Cases not closed with their citizens (one statement): urgent first, oldest first
    within a priority."""
    rows = await session.execute(
        select(Case, Citizen)
        .outerjoin(Citizen, Citizen.id == Case.citizen_id)
        .where(Case.status != CaseStatus.CLOSED)
        .order_by(Case.priority == CasePriority.NORMAL, Case.opened_at, Case.id)
    )
    return [(case, citizen) for case, citizen in rows]


async def officers(session: AsyncSession, on_duty_only: bool) -> list[tuple[int, str]]:
    """(user id, display name) of the officers, by id."""
    stmt = select(StaffRole).where(StaffRole.role == Role.OFFICER)
    if on_duty_only:
        stmt = stmt.where(StaffRole.on_duty.is_(True))
    rows = (await session.scalars(stmt.order_by(StaffRole.user_id))).all()
    return [(r.user_id, r.display_name or f"officer {r.user_id}") for r in rows]


async def staff_roles(session: AsyncSession, user_id: int) -> Sequence[StaffRole]:
    return (await session.scalars(select(StaffRole).where(StaffRole.user_id == user_id))).all()


async def has_message(session: AsyncSession, case: Case, message_id: int) -> bool:
    """The citizen's message is in the case already (its update is handled a second time)."""
    found = await session.scalar(
        select(Message.id).where(
            Message.case_id == case.id,
            Message.direction == Direction.CITIZEN,
            Message.telegram_message_id == message_id,
        )
    )
    return found is not None


async def recent_texts(
    session: AsyncSession, citizen_id: int, since: datetime, limit: int
) -> list[str]:
    """The citizen's last texts outside any case since `since`, oldest first (those the
    update's identity read brought, when it brought enough)."""
    known = repo.earlier_texts(session, citizen_id, since, limit)
    if known is not None:
        return known
    rows = await read(
        session, _RECENT_TEXTS, {"citizen": citizen_id, "since": since, "limit": limit}
    )
    return [text for (text,) in reversed(rows) if text]


async def is_officer_copy(session: AsyncSession, case: Case, message_id: int) -> bool:
    """The citizen's message `message_id` is the bot's copy of an officer's message."""
    found = await session.scalar(
        select(MessagePair.id).where(
            MessagePair.case_id == case.id,
            MessagePair.citizen_chat_id == case.citizen_id,
            MessagePair.citizen_message_id == message_id,
            MessagePair.direction == Direction.OFFICER,
        )
    )
    return found is not None


async def is_relay_copy(session: AsyncSession, case: Case, topic_message_id: int) -> bool:
    """The topic's message is the bot's own copy of a citizen's message."""
    found = await session.scalar(
        select(MessagePair.id).where(
            MessagePair.topic_chat_id == case.forum_chat_id,
            MessagePair.topic_message_id == topic_message_id,
        )
    )
    return found is not None


async def pair_of_citizen_message(
    session: AsyncSession, citizen_id: int, message_id: int
) -> MessagePair | None:
    return await session.scalar(
        select(MessagePair).where(
            MessagePair.citizen_chat_id == citizen_id,
            MessagePair.citizen_message_id == message_id,
        )
    )


async def pair_of_officer_message(
    session: AsyncSession, chat_id: int, message_id: int
) -> MessagePair | None:
    return await session.scalar(
        select(MessagePair).where(
            MessagePair.topic_chat_id == chat_id,
            MessagePair.topic_message_id == message_id,
            MessagePair.direction == Direction.OFFICER,
        )
    )


async def citizen_message(
    session: AsyncSession, citizen_id: int, message_id: int
) -> Message | None:
    return await session.scalar(
        select(Message).where(
            Message.citizen_id == citizen_id,
            Message.telegram_message_id == message_id,
            Message.direction == Direction.CITIZEN,
        )
    )


async def pending_messages(session: AsyncSession, case: Case) -> Sequence[Message]:
    """The case's messages waiting to be relayed, in each side's chat order."""
    return (
        await session.scalars(
            select(Message)
            .where(Message.case_id == case.id, Message.relay_state == RelayState.PENDING)
            # Updates are handled concurrently, so row ids may not follow the chat; Telegram's
            # message ids do, per side.
            .order_by(Message.direction, Message.telegram_message_id, Message.id)
        )
    ).all()


async def mark_relayed_done(session: AsyncSession, row_id: int) -> None:
    await session.execute(
        update(Message).where(Message.id == row_id).values(relay_state=RelayState.DONE)
    )


async def mark_blocked(session: AsyncSession, citizen_id: int, at: datetime) -> None:
    """The citizen blocked the bot (kept from the first time it was found)."""
    citizen = await session.get(Citizen, citizen_id)
    if citizen is not None and not citizen.blocked_bot:
        citizen.blocked_bot = True
        citizen.blocked_at = at


async def other_case_ids(session: AsyncSession, case: Case) -> Sequence[int]:
    """The ids of the citizen's other cases, oldest first."""
    return (
        await session.scalars(
            select(Case.id)
            .where(Case.citizen_id == case.citizen_id, Case.id != case.id)
            .order_by(Case.id)
        )
    ).all()


async def history_before(session: AsyncSession, case: Case, limit: int) -> list[Message]:
    """The citizen's last `limit` messages outside this case (notes left out), oldest first."""
    if not limit:
        return []
    rows = await session.scalars(
        select(Message)
        .where(
            Message.citizen_id == case.citizen_id,
            Message.direction != Direction.NOTE,
            or_(Message.case_id.is_(None), Message.case_id != case.id),
        )
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
    )
    return list(reversed(rows.all()))


async def citizen_wrote_in(session: AsyncSession, case: Case) -> bool:
    """Whether any message of the citizen's belongs to the case."""
    found = await session.scalar(
        select(Message.id)
        .where(Message.case_id == case.id, Message.direction == Direction.CITIZEN)
        .limit(1)
    )
    return found is not None


async def cases_to_flush(session: AsyncSession) -> dict[int, str]:
    """Cases whose card is not delivered or with messages to relay: id -> priority."""
    undelivered = (
        await session.execute(
            select(Case.id, Case.priority)
            .where(Case.delivered_at.is_(None), Case.status != CaseStatus.CLOSED)
            .order_by(*_URGENT_FIRST)
        )
    ).all()
    pending = (
        await session.execute(
            select(Case.id, Case.priority)
            .where(
                Case.id.in_(
                    select(Message.case_id).where(
                        Message.relay_state == RelayState.PENDING,
                        Message.case_id.is_not(None),
                    )
                )
            )
            .order_by(*_URGENT_FIRST)
        )
    ).all()
    return dict([*undelivered, *pending])


async def unclaimed_urgent(session: AsyncSession) -> Sequence[int]:
    return (
        await session.scalars(
            select(Case.id)
            .where(Case.status == CaseStatus.OPEN, Case.priority == CasePriority.URGENT)
            .order_by(Case.id)
        )
    ).all()


async def unanswered_since(session: AsyncSession, opened_before: datetime) -> Sequence[int]:
    """Open cases nobody answered, opened before the time, not told to wait yet."""
    return (
        await session.scalars(
            select(Case.id).where(
                Case.status == CaseStatus.OPEN,
                Case.first_response_at.is_(None),
                Case.wait_notice_at.is_(None),
                Case.opened_at <= opened_before,
            )
        )
    ).all()

"""What a citizen's /forget deletes, and what /privacy tells them is kept and for how long.

Cases are official records: /forget keeps them (the case rows, officers' replies and notes,
the message-id pairs that relay edits), with the citizen's own message texts in them removed.
Everything else about the citizen goes: the profile (names, username, Telegram language,
chosen language, last-seen time), subscriptions, alert delivery rows, FAQ questions, messages
outside cases and updates of theirs parked after failing. A citizen without cases is deleted
altogether. The audit log records that it happened, never what was deleted.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import repo
from bot.db.models import (
    AlertDelivery,
    Case,
    CaseStatus,
    Citizen,
    Direction,
    FaqQuery,
    InboxUpdate,
    Message,
    RelayState,
    Subscription,
    utcnow,
)

if TYPE_CHECKING:
    from bot.config import RetentionSettings
    from bot.i18n import Locales


class ForgetOutcome(enum.StrEnum):
    DONE = "done"  # deleted; the citizen's row is gone
    DONE_CASES_KEPT = "done_cases_kept"  # deleted; their case records stay, without their texts
    OPEN_CASE = "open_case"  # nothing deleted: a case is still open or still being relayed
    UNKNOWN = "unknown"  # nothing stored about this citizen


async def forget_citizen(
    session: AsyncSession, citizen_id: int, *, now: datetime | None = None
) -> ForgetOutcome:
    """Delete what is stored about a citizen except their case records; audited.

    Refused (nothing deleted) while one of their cases is not closed, or a message of theirs
    is still waiting to be relayed to a case topic: officers must be able to read it. Does
    not commit: the caller's unit of work does.
    """
    citizen = await session.get(Citizen, citizen_id)
    if citizen is None:
        return ForgetOutcome.UNKNOWN
    busy = await session.scalar(
        select(
            exists().where(Case.citizen_id == citizen_id, Case.status != CaseStatus.CLOSED)
            | exists().where(
                Message.citizen_id == citizen_id,
                Message.case_id.is_not(None),
                Message.direction == Direction.CITIZEN,
                Message.relay_state == RelayState.PENDING,
            )
        )
    )
    if busy:
        return ForgetOutcome.OPEN_CASE
    for stmt in (
        delete(Subscription).where(Subscription.citizen_id == citizen_id),
        delete(AlertDelivery).where(AlertDelivery.citizen_id == citizen_id),
        delete(FaqQuery).where(FaqQuery.citizen_id == citizen_id),
        delete(Message).where(Message.citizen_id == citizen_id, Message.case_id.is_(None)),
        # Updates that failed and were parked hold the whole message and the profile; those
        # still in flight leave the inbox when handled.
        delete(InboxUpdate).where(InboxUpdate.chat_id == citizen_id, InboxUpdate.parked.is_(True)),
        # In the case records that stay, only the citizen's own words are removed.
        update(Message)
        .where(
            Message.citizen_id == citizen_id,
            Message.case_id.is_not(None),
            Message.direction == Direction.CITIZEN,
            Message.text.is_not(None),
        )
        .values(text=None),
    ):
        await session.execute(stmt)
    has_cases = await session.scalar(select(exists().where(Case.citizen_id == citizen_id)))
    if has_cases:
        # The row stays because the cases point at it; nothing in it says who they are.
        citizen.first_name, citizen.last_name, citizen.username = "", None, None
        citizen.telegram_language = None
        citizen.language = None
        citizen.last_seen_at = citizen.created_at
        outcome = ForgetOutcome.DONE_CASES_KEPT
    else:
        await session.delete(citizen)
        outcome = ForgetOutcome.DONE
    repo.audit(
        session,
        "citizen.forget",
        actor_id=citizen_id,
        target_type="citizen",
        target_id=citizen_id,
        at=now or utcnow(),
    )
    await session.flush()
    return outcome


async def forget_and_commit(session: AsyncSession, citizen_id: int) -> ForgetOutcome:
    """/forget confirmed: `forget_citizen`, committed before the caller tells the citizen the
    outcome (no write transaction is held across a call to Telegram)."""
    outcome = await forget_citizen(session, citizen_id)
    await session.commit()
    return outcome


def _kept(locales: Locales, lang: str, days: int, key: str, forever: str) -> str:
    if days == 0:
        return locales.t(lang, forever)
    if days == 1 and key == "privacy_days":
        key = "privacy_days_one"
    return locales.t(lang, key, days=days)


def privacy_notice(locales: Locales, lang: str, retention: RetentionSettings) -> str:
    """/privacy: what is kept and for how long, from the interface texts and the settings
    (so it stays true when the retention settings change)."""
    until_forget = "privacy_until_forget"
    return locales.t(
        lang,
        "privacy",
        messages=_kept(locales, lang, retention.messages_days, "privacy_days", until_forget),
        faq_queries=_kept(locales, lang, retention.faq_queries_days, "privacy_days", until_forget),
        alert_deliveries=_kept(
            locales, lang, retention.alert_deliveries_days, "privacy_alert_days", until_forget
        ),
        # Update ids are not tied to the citizen, so /forget does not touch them.
        processed_updates=_kept(
            locales, lang, retention.processed_updates_days, "privacy_days", "privacy_forever"
        ),
    )

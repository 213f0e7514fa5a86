"""Urgent triage of every citizen text before the FAQ: crisis, emergency, or "a person, please".

Crisis and emergency messages get the safe-messaging reply from content and an urgent case;
asking for a person (in words, /human or the FAQ's button) opens a normal case. Anything else
falls through to the FAQ with `SkipHandler`. Flood-throttled citizens are triaged too.
"""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import CasePriority, CaseReason, CaseStatus, Citizen
from bot.handoff import HandoffService
from bot.i18n import Locales
from bot.triage import Triage
from handlers.callbacks import HumanCb

log = logging.getLogger(__name__)
router = Router(name=__name__)
router.message.filter(F.chat.type == "private")


def content_kind(message: Message) -> str:
    """The message's content type as a plain string ("text", "photo"…).

    aiogram types it as str but hands out a ContentType enum, whose str() is "ContentType.TEXT".
    """
    kind = message.content_type
    return str(getattr(kind, "value", kind))


# level -> (case reason, priority, reply text key)
LEVELS: dict[str, tuple[CaseReason, CasePriority, str]] = {
    "crisis": (CaseReason.CRISIS, CasePriority.URGENT, "ho_crisis_reply"),
    "emergency": (CaseReason.EMERGENCY, CasePriority.URGENT, "ho_emergency_reply"),
    "human": (CaseReason.HUMAN, CasePriority.NORMAL, "ho_human_reply"),
}


async def escalate(
    message: Message,
    session: AsyncSession,
    citizen: Citizen,
    handoff: HandoffService,
    lang: str,
    level: str,
    signals: tuple[str, ...],
    with_trigger: bool,
) -> None:
    """Store the case (committed), reply to the citizen, then deliver it to the officers."""
    reason, priority, key = LEVELS[level]
    trigger = None
    if with_trigger:
        text = message.text or message.caption
        trigger = (message.message_id, content_kind(message), text)
    case = None
    try:
        case = await handoff.open_case(
            session,
            citizen,
            reason=reason,
            priority=priority,
            signals=signals,
            lang=lang,
            trigger=trigger,
        )
    except Exception:
        # The reply below must go out even when the database is failing.
        log.exception("could not store a %s case for citizen %s", level, citizen.id)
        await session.rollback()
    try:
        await message.answer(handoff.citizen_text(lang, key))
    except TelegramAPIError as exc:
        log.error("case %s: %s reply not sent: %s", case.id if case else "?", level, exc)
    if case is not None:
        await handoff.flush_case(case.id)


@router.message(Command("human"))
async def human_command(
    message: Message,
    session: AsyncSession,
    citizen: Citizen | None,
    handoff: HandoffService,
    lang: str,
) -> None:
    """/human: the citizen asks for a person."""
    if citizen is None:
        raise SkipHandler
    await escalate(message, session, citizen, handoff, lang, "human", ("/human",), False)


@router.message(F.text | F.caption)
async def triage_message(
    message: Message,
    session: AsyncSession,
    citizen: Citizen | None,
    handoff: HandoffService,
    triage: Triage,
    locales: Locales,
) -> None:
    """Every citizen text (and caption) that is not a command, before the FAQ."""
    text = message.text or message.caption or ""
    if citizen is None or (message.text is not None and text.startswith("/")):
        raise SkipHandler
    lang = locales.for_citizen(citizen, text)
    result = await triage.aclassify(text, lang)
    if result.level == "normal":
        # Kept as the transcript an officer sees if a case opens later (/forget deletes it).
        await handoff.store_citizen_message(
            session, citizen.id, None, message.message_id, content_kind(message), text
        )
        raise SkipHandler
    await escalate(message, session, citizen, handoff, lang, result.level, result.signals, True)


@router.callback_query(HumanCb.filter())
async def human_button(
    query: CallbackQuery,
    session: AsyncSession,
    citizen: Citizen | None,
    handoff: HandoffService,
    lang: str,
) -> None:
    """The FAQ's "talk to an officer" button."""
    if citizen is None or not isinstance(query.message, Message):
        raise SkipHandler
    await query.answer()
    existing = await handoff.active_case(session, citizen.id)
    if existing is not None and existing.status != CaseStatus.CLOSED:
        await query.message.answer(handoff.citizen_text(lang, "ho_already_connected"))
        return
    await escalate(query.message, session, citizen, handoff, lang, "human", ("button",), False)

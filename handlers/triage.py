"""Urgent triage of every citizen text before the FAQ: crisis, emergency, or "a person, please".

Crisis and emergency messages get the safe-messaging reply from content and an urgent case;
asking for a person (in words, /human or the FAQ's button) opens a normal case. Anything else
falls through to the FAQ with `SkipHandler`. Flood-throttled citizens are triaged too.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message, Update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import failpoints, metrics
from bot.cases.service import HandoffService
from bot.db.models import CasePriority, CaseReason, CaseStatus, Citizen
from bot.i18n import Locales
from bot.intake import URGENT_REPLY_KEYS, UrgentReplies
from bot.triage import Triage, TriageResult
from handlers.callbacks import HumanCb
from handlers.filters import PRIVATE, Is

log = logging.getLogger(__name__)


def content_kind(message: Message) -> str:
    """The message's content type as a plain string ("text", "photo"…).

    aiogram types it as str but hands out a ContentType enum, whose str() is "ContentType.TEXT".
    """
    kind = message.content_type
    return str(getattr(kind, "value", kind))


# A citizen's last messages read together by the rules: this many, sent within this time.
TOGETHER = 3
TOGETHER_WITHIN = timedelta(minutes=5)

# level -> (case reason, priority, reply text key)
LEVELS: dict[str, tuple[CaseReason, CasePriority, str]] = {
    "crisis": (CaseReason.CRISIS, CasePriority.URGENT, "ho_crisis_reply"),
    "emergency": (CaseReason.EMERGENCY, CasePriority.URGENT, "ho_emergency_reply"),
    "human": (CaseReason.HUMAN, CasePriority.NORMAL, "ho_human_reply"),
}


def make_router() -> Router:
    """A new router with this module's handlers, in the order they are tried."""
    router = Router(name=__name__)
    router.message.filter(PRIVATE)
    router.edited_message.filter(PRIVATE)
    router.message.register(human_command, Command("human"))
    router.message.register(triage_message, Is(F.text | F.caption))
    router.edited_message.register(triage_message, Is(F.text | F.caption))
    router.callback_query.register(human_button, HumanCb.filter())
    return router


async def escalate(
    message: Message,
    session: AsyncSession,
    citizen: Citizen,
    handoff: HandoffService,
    lang: str,
    level: str,
    signals: tuple[str, ...],
    with_trigger: bool,
    urgent: tuple[UrgentReplies, int] | None = None,
) -> None:
    """Store the case (committed), reply to the citizen, then deliver it to the officers.

    `urgent` is (the urgent replies, the update id) for a crisis or emergency: the reply is
    owed once per update, so the one the rules owed on arrival is not sent again.
    """
    reason, priority, key = LEVELS[level]
    trigger = None
    if with_trigger:
        text = message.text or message.caption
        trigger = (message.message_id, content_kind(message), text)
    # A crisis or emergency reply must go out even when the database is failing.
    open_case = handoff.open_case if urgent is None else handoff.open_case_or_none
    case = await open_case(
        session,
        citizen,
        reason=reason,
        priority=priority,
        signals=signals,
        lang=lang,
        trigger=trigger,
    )
    failpoints.reached("case_stored")
    if urgent is not None:
        replies, update_id = urgent
        await replies.owe(session, update_id, message.chat.id, level, lang)
    else:
        try:
            await message.answer(handoff.citizen_text(lang, key))
        except TelegramAPIError as exc:
            log.error("case %s: %s reply not sent: %s", case.id if case else "?", level, exc)
    if case is None:
        raise RuntimeError(f"the {level} case of citizen {citizen.id} is not stored yet")
    await handoff.flush_case(case.id)


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


async def triage_message(
    message: Message,
    event_update: Update,
    session: AsyncSession,
    citizen: Citizen | None,
    handoff: HandoffService,
    triage: Triage,
    urgent_replies: UrgentReplies,
    locales: Locales,
) -> None:
    """Every citizen text, caption and edit of one that is not a command, before the FAQ."""
    text = message.text or message.caption or ""
    if citizen is None or (message.text is not None and text.startswith("/")):
        raise SkipHandler
    lang = locales.for_citizen(citizen, text)
    result = await triage.aknown(text, lang)  # usually judged on arrival already
    if result is None:
        # The models may take a while in a surge (their queue): give the connection back
        # first (what was read stays usable), so a waiting message never holds one another
        # update needs.
        await handoff.release(session)
        result = await triage.aclassify(text, lang)
    failpoints.reached("triaged")
    if event_update.edited_message is not None and result.level not in URGENT_REPLY_KEYS:
        raise SkipHandler  # an ordinary edit: the fallback says only new messages are answered
    if result.level == "normal" and event_update.message is not None:
        # A crisis said across several short messages: read the last few together (the
        # rules only; the model has read each message on its own).
        earlier = await handoff.recent_texts(session, citizen.id, TOGETHER_WITHIN, TOGETHER - 1)
        if earlier:
            together = triage.rules("\n".join([*earlier, text]), lang)
            if together.level in URGENT_REPLY_KEYS:
                result = TriageResult(together.level, (*together.signals, "across_messages"))
    metrics.TRIAGE.labels(result.level).inc()
    if result.level == "normal":
        # Kept as the transcript an officer sees if a case opens later (/forget deletes it).
        await handoff.store_citizen_message(
            session, citizen.id, None, message.message_id, content_kind(message), text
        )
        raise SkipHandler
    urgent = (urgent_replies, event_update.update_id) if result.level in URGENT_REPLY_KEYS else None
    await escalate(
        message, session, citizen, handoff, lang, result.level, result.signals, True, urgent
    )


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

"""Citizens with an active case: every message (any type) and edit goes to the case topic.

A closed case comes back within the reopen window when the citizen wants the officer: a reply
to an officer's message, /human, the "talk to the officer again" button, or a message triage
finds urgent. Anything else after a close is an ordinary message (the FAQ answers it).
Also the 1-5 rating after a close, and the topic notice when a citizen blocks the bot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aiogram import Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, ChatMemberUpdated, InlineKeyboardMarkup, Message, Update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import refusals
from bot.cases.cards import RateCb, ReopenCb
from bot.cases.service import HandoffService
from bot.db.models import Case, CasePriority, CaseStatus, Citizen
from bot.i18n import Locales
from bot.intake import URGENT_REPLY_KEYS, UrgentReplies
from bot.triage import Triage, TriageResult
from handlers.filters import PRIVATE
from handlers.triage import LEVELS, content_kind

log = logging.getLogger(__name__)


def make_router() -> Router:
    """A new router with this module's handlers, in the order they are tried."""
    router = Router(name=__name__)
    router.message.filter(PRIVATE)
    router.edited_message.filter(PRIVATE)
    router.message.register(relay_citizen, has_case, relay_view)
    router.edited_message.register(relay_citizen_edit, has_case, relay_view)
    router.callback_query.register(rate, RateCb.filter())
    router.callback_query.register(talk_again, ReopenCb.filter())
    return router


def make_watch_router() -> Router:
    """A new router that hears a citizen block or unblock the bot. Placed before `common` so
    the topic hears about a block; it always lets `common` run too."""
    router = Router(name=f"{__name__}.watch")
    router.my_chat_member.register(blocked_or_unblocked, PRIVATE)
    return router


async def has_case(
    event: Message,
    session: AsyncSession,
    citizen: Citizen | None,
    handoff: HandoffService,
    triage: Triage,
    locales: Locales,
) -> bool | dict[str, Any]:
    """Passes with {"case": …} when the citizen has an open case, or one closed recently that
    this message brings back (see the module docstring)."""
    if citizen is None:
        return False
    case = await handoff.active_case(session, citizen.id)
    if case is None:
        return False
    if case.status != CaseStatus.CLOSED:
        return {"case": case}
    replied = event.reply_to_message
    if replied is not None and await handoff.answers_officer(session, case, replied.message_id):
        return {"case": case}
    text = event.text or event.caption or ""
    if event.text is not None and text.split()[:1] and text.split()[0].split("@")[0] == "/human":
        return {"case": case}
    if text and not text.startswith("/"):
        result = await triage.aclassify(text, locales.for_citizen(citizen, text))
        if result.level in URGENT_REPLY_KEYS:
            return {"case": case}
    return False


@dataclass(frozen=True)
class RelayView:
    """What the relay handlers work with (each one's `relay`), for one update of a citizen
    with a case: the case desk, triage, the urgent replies owed, the texts and the update."""

    handoff: HandoffService
    triage: Triage
    urgent_replies: UrgentReplies
    locales: Locales
    lang: str
    update_id: int

    async def read(self, message: Message, citizen: Citizen) -> tuple[TriageResult, str]:
        """A case message's triage (commands and media without a caption are not triaged)
        and the language it is written in."""
        text = message.text or message.caption
        if not text or (message.text is not None and text.startswith("/")):
            return TriageResult("normal", ()), self.lang
        lang = self.locales.for_citizen(citizen, text)
        return await self.triage.aclassify(text, lang), lang

    async def owe(self, session: AsyncSession, chat_id: int, level: str, lang: str) -> None:
        """The urgent reply this update owes the citizen (sent once, by the intake's replies)."""
        await self.urgent_replies.owe(session, self.update_id, chat_id, level, lang)


async def relay_view(
    _event: object,
    event_update: Update,
    handoff: HandoffService,
    triage: Triage,
    urgent_replies: UrgentReplies,
    locales: Locales,
    lang: str,
) -> dict[str, RelayView]:
    """The relay handlers' last filter: it always passes, and gives them `relay`."""
    view = RelayView(handoff, triage, urgent_replies, locales, lang, event_update.update_id)
    return {"relay": view}


async def relay_citizen(
    message: Message, session: AsyncSession, citizen: Citizen, case: Case, relay: RelayView
) -> None:
    """Any message of a citizen with an active case: stored, then copied into the topic."""
    result, lang = await relay.read(message, citizen)
    handoff = relay.handoff
    urgent = result.level in URGENT_REPLY_KEYS
    reopened, upgraded = await handoff.citizen_wrote(
        session,
        citizen,
        case,
        message_id=message.message_id,
        content_type=content_kind(message),
        text=message.text or message.caption,
        urgent=LEVELS[result.level][0] if urgent else None,
        signals=result.signals,
        lang=lang,
    )
    level = result.level
    urgent_reply = upgraded or (reopened and level in URGENT_REPLY_KEYS)
    if urgent_reply:
        await relay.owe(session, message.chat.id, level, lang)
    try:
        if reopened and not urgent_reply:
            await message.answer(handoff.citizen_text(lang, "ho_reopened_citizen"))
        elif not reopened and message.text and message.text.split()[0].split("@")[0] == "/human":
            await message.answer(handoff.citizen_text(lang, "ho_already_connected"))
    except TelegramAPIError as exc:
        log.error("case %s: reply to the citizen failed: %s", case.id, exc)
    if reopened:
        await handoff.set_topic_closed(case.id, closed=False)
    if upgraded:
        await handoff.rename_topic(case.id)
    await handoff.flush_case(case.id)


async def relay_citizen_edit(
    message: Message, session: AsyncSession, citizen: Citizen, case: Case, relay: RelayView
) -> None:
    """A citizen with an active case edited a message: the topic's copy is edited too, and
    an edit that now says crisis or emergency makes the case urgent like a new message."""
    result, lang = await relay.read(message, citizen)
    level, handoff = result.level, relay.handoff
    if level in URGENT_REPLY_KEYS and case.priority != CasePriority.URGENT:
        reopened = await handoff.make_urgent(
            session, citizen, case, reason=LEVELS[level][0], signals=result.signals, lang=lang
        )
        await relay.owe(session, message.chat.id, level, lang)
        if reopened:
            await handoff.set_topic_closed(case.id, closed=False)
        await handoff.rename_topic(case.id)
    await handoff.relay_citizen_edit(
        session, citizen.id, message.message_id, message.html_text, is_caption=message.text is None
    )
    await handoff.flush_case(case.id)


async def rate(
    query: CallbackQuery,
    callback_data: RateCb,
    session: AsyncSession,
    handoff: HandoffService,
    locales: Locales,
    lang: str,
) -> None:
    """A 1-5 rating button after a close (forged or repeated ratings are refused)."""
    ok = await handoff.rate(session, callback_data.case_id, query.from_user.id, callback_data.stars)
    if not ok:
        await query.answer(locales.t(lang, "ho_rate_refused"), show_alert=True)
        return
    await query.answer(locales.t(lang, "ho_rate_thanks"))
    if isinstance(query.message, Message) and query.message.reply_markup is not None:
        # The stars go; "talk to the officer again" stays.
        kept = [
            row
            for row in query.message.reply_markup.inline_keyboard
            if not any((b.callback_data or "").startswith(RateCb.__prefix__) for b in row)
        ]
        try:
            await query.message.edit_reply_markup(
                reply_markup=InlineKeyboardMarkup(inline_keyboard=kept) if kept else None
            )
        except TelegramAPIError as exc:
            log.warning("rating buttons not removed: %s", exc)


async def talk_again(
    query: CallbackQuery,
    callback_data: ReopenCb,
    session: AsyncSession,
    citizen: Citizen | None,
    handoff: HandoffService,
    lang: str,
) -> None:
    """ "Talk to the officer again" under the closing message: the case and its topic open."""
    case = await handoff.case(session, callback_data.case_id)
    if citizen is None or case is None or case.citizen_id != query.from_user.id:
        refusals.forged_case_button(session, actor_id=query.from_user.id, data=query.data)
        await query.answer(handoff.citizen_text(lang, "ho_rate_refused"), show_alert=True)
        return
    if case.status != CaseStatus.CLOSED:
        await query.answer(handoff.citizen_text(lang, "ho_already_connected"), show_alert=True)
        return
    if not handoff.reopenable(case):
        await query.answer(handoff.citizen_text(lang, "ho_talk_again_expired"), show_alert=True)
        return
    await handoff.bring_back(session, case)
    await query.answer()
    if isinstance(query.message, Message):
        try:
            await query.message.answer(handoff.citizen_text(lang, "ho_reopened_citizen"))
        except TelegramAPIError as exc:
            log.error("case %s: reply to the citizen failed: %s", case.id, exc)
    await handoff.set_topic_closed(case.id, closed=False)
    await handoff.flush_case(case.id)


async def blocked_or_unblocked(
    event: ChatMemberUpdated,
    session: AsyncSession,
    citizen: Citizen | None,
    handoff: HandoffService,
) -> None:
    """The citizen blocked or unblocked the bot: the case topic says so; `common` records it."""
    if citizen is not None:
        await handoff.citizen_blocked(session, citizen.id, event.new_chat_member.status == "kicked")
    raise SkipHandler

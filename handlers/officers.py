"""The officers' forum supergroup: case commands, duty, and officer replies relayed to citizens.

Only messages in OFFICERS_CHAT_ID reach this router. In a case topic an officer's message is
copied to the citizen as the bot (the first one claims the case); commands are never relayed.
Only staff with the officer or admin role may act; refusals are audited.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot import refusals
from bot.cases.cards import BADGE, citizen_label, split_html_lines, topic_link
from bot.cases.service import HandoffService
from bot.config import Settings
from bot.db.models import CasePriority, CaseStatus, Role
from bot.i18n import Locales
from handlers.filters import Is
from handlers.triage import content_kind

log = logging.getLogger(__name__)

TOPIC_COMMANDS = ("claim", "close", "note", "ban", "unban", "transfer")
GROUP_COMMANDS = ("cases", "onduty", "offduty")
# /cases lists this many open cases (oldest urgent first), in as many messages as needed.
MAX_LISTED = 200
# What an officer can send a citizen; service messages (topic edits, joins…) are not relayed.
RELAYABLE = {
    "text",
    "photo",
    "document",
    "voice",
    "audio",
    "video",
    "video_note",
    "animation",
    "sticker",
    "location",
    "venue",
    "contact",
}


async def in_officers_chat(message: Message, settings: Settings) -> bool:
    """The update comes from the configured officers' forum (a coroutine: `handlers.filters`)."""
    return settings.officers.chat_id is not None and message.chat.id == settings.officers.chat_id


def make_router() -> Router:
    """A new router with this module's handlers, in the order they are tried."""
    router = Router(name=__name__)
    router.message.filter(in_officers_chat)
    router.edited_message.filter(in_officers_chat)
    router.message.register(officers_help, Command("help"))
    router.message.register(group_command, Command(*GROUP_COMMANDS))
    router.message.register(topic_command, Command(*TOPIC_COMMANDS))
    router.message.register(unknown_command, Is(F.text.startswith("/")))
    router.message.register(topic_message)
    router.edited_message.register(topic_edit)
    return router


def thread_of(message: Message) -> int | None:
    """The forum topic of a message; General-topic messages and reply threads have none."""
    return message.message_thread_id if message.is_topic_message else None


def is_officer(roles: set[Role]) -> bool:
    """Officer commands and relays need the officer or admin role."""
    return Role.OFFICER in roles or Role.ADMIN in roles


async def _refuse(
    message: Message, session: AsyncSession, locales: Locales, lang: str, what: str
) -> None:
    await refusals.not_an_officer(
        session,
        actor_id=message.from_user.id if message.from_user else None,
        chat_id=message.chat.id,
        what=what,
    )
    await message.reply(locales.t(lang, "ho_not_officer"))


async def officers_help(message: Message, locales: Locales, lang: str) -> None:
    """/help in the forum: the officers' commands (nothing in it is secret)."""
    await message.reply(locales.t(lang, "help_officers"))


async def group_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    roles: set[Role],
    handoff: HandoffService,
    locales: Locales,
    lang: str,
) -> None:
    """/cases, /onduty, /offduty anywhere in the forum."""
    user = message.from_user
    if user is None or not is_officer(roles):
        await _refuse(message, session, locales, lang, f"/{command.command}")
        return
    if command.command in ("onduty", "offduty"):
        on = command.command == "onduty"
        if not await handoff.set_duty(session, user.id, on):
            await message.reply(locales.t(lang, "ho_no_role"))
            return
        await message.reply(locales.t(lang, "ho_onduty" if on else "ho_offduty"))
        return
    cases = await handoff.open_cases(session)
    if not cases:
        await message.reply(locales.t(lang, "ho_cases_none"))
        return
    now = datetime.now(UTC)
    lines = [locales.t(lang, "ho_cases_title", count=len(cases))]
    for case, citizen in cases[:MAX_LISTED]:
        line = locales.t(
            lang,
            "ho_cases_line",
            badge=BADGE.get(CasePriority(case.priority), case.priority),
            id=case.id,
            name=citizen_label(citizen) if citizen else "?",
            status=case.status,
            minutes=int((now - case.opened_at).total_seconds() // 60),
        )
        link = topic_link(case.forum_chat_id or 0, case.forum_topic_id)
        if link:
            line = line.replace(f"#{case.id}", f'<a href="{link}">#{case.id}</a>', 1)
        lines.append(line)
    if len(cases) > MAX_LISTED:
        lines.append(locales.t(lang, "ho_cases_more", count=len(cases) - MAX_LISTED))
    for i, text in enumerate(split_html_lines(lines)):
        if i == 0:
            await message.reply(text, disable_web_page_preview=True)
        else:
            await message.answer(text, disable_web_page_preview=True)


async def topic_command(
    message: Message,
    command: CommandObject,
    session: AsyncSession,
    roles: set[Role],
    handoff: HandoffService,
    locales: Locales,
    lang: str,
) -> None:
    """/claim, /close [note], /note text, /ban, /unban, /transfer inside a case topic."""
    user = message.from_user
    if user is None or not is_officer(roles):
        await _refuse(message, session, locales, lang, f"/{command.command}")
        return
    case = await handoff.case_by_topic(session, message.chat.id, thread_of(message))
    if case is None:
        await message.reply(locales.t(lang, "ho_not_in_case_topic"))
        return
    name = await handoff.staff_name(session, user.id)
    if command.command == "note":
        if not (command.args or "").strip():
            await message.reply(locales.t(lang, "ho_note_empty"))
            return
        await handoff.add_note(session, case, user.id, command.args.strip())  # type: ignore[union-attr]
        await message.reply(locales.t(lang, "ho_note_saved"))
        return
    if command.command in ("ban", "unban"):
        banned = command.command == "ban"
        citizen = await handoff.set_ban(session, case, user.id, banned)
        label = citizen_label(citizen)
        await message.reply(locales.t(lang, "ho_banned" if banned else "ho_unbanned", name=label))
        return
    if case.status == CaseStatus.CLOSED:
        await message.reply(locales.t(lang, "ho_already_closed"))
        return
    if command.command == "claim":
        previous = await handoff.claim(session, case, user.id)
        if previous is not None:
            before = await handoff.staff_name(session, previous)
            text = locales.t(lang, "ho_claimed_over", officer=name, previous=before)
        else:
            text = locales.t(lang, "ho_claimed", officer=name)
        await message.reply(text)
    elif command.command == "transfer":
        await handoff.transfer(session, case, user.id)
        await message.reply(locales.t(lang, "ho_transferred", officer=name))
    elif command.command == "close":
        await handoff.close(session, case, user.id, (command.args or "").strip() or None)


async def unknown_command(message: Message, locales: Locales, lang: str) -> None:
    """Any other command in a case topic is not relayed."""
    if thread_of(message) is not None:
        await message.reply(locales.t(lang, "ho_unknown_command"))


async def topic_message(
    message: Message,
    session: AsyncSession,
    roles: set[Role],
    handoff: HandoffService,
    locales: Locales,
    lang: str,
) -> None:
    """A message in a case topic: an officer's is copied to the citizen as the bot."""
    user = message.from_user
    if user is None or user.is_bot or content_kind(message) not in RELAYABLE:
        return
    case = await handoff.case_by_topic(session, message.chat.id, thread_of(message))
    if case is None:
        return  # chatter in General or in a topic that is not a case
    if not is_officer(roles):
        await refusals.not_relayed(
            session, actor_id=user.id, case_id=case.id, message_id=message.message_id
        )
        await message.reply(locales.t(lang, "ho_outsider_not_relayed"))
        return
    if case.status == CaseStatus.CLOSED:
        await message.reply(locales.t(lang, "ho_case_closed_not_sent"))
        return
    claimed = await handoff.store_officer_message(
        session,
        case,
        user.id,
        message.message_id,
        content_kind(message),
        message.text or message.caption,
    )
    if claimed:
        name = await handoff.staff_name(session, user.id)
        await message.answer(locales.t(lang, "ho_claimed", officer=name))
    await handoff.flush_case(case.id)


async def topic_edit(
    message: Message, session: AsyncSession, roles: set[Role], handoff: HandoffService
) -> None:
    """An officer edited a relayed message: the citizen's copy is edited too."""
    if message.from_user is None or not is_officer(roles) or thread_of(message) is None:
        return
    await handoff.relay_officer_edit(
        session,
        message.chat.id,
        message.message_id,
        message.html_text,
        is_caption=message.text is None,
    )

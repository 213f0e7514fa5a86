"""The officers' forum supergroup: case commands, duty, and officer replies relayed to citizens.

Only messages in OFFICERS_CHAT_ID reach this router. In a case topic an officer's message is
copied to the citizen as the bot (the first one claims the case); commands are never relayed.
Only staff with the officer or admin role may act; refusals are audited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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


@dataclass(frozen=True)
class ForumView:
    """What every handler in the forum works with (each one's `forum`): the case desk and the
    interface texts in the sender's language."""

    handoff: HandoffService
    locales: Locales
    lang: str

    def t(self, key: str, **values: Any) -> str:
        """An interface text in the sender's language."""
        return self.locales.t(self.lang, key, **values)


async def forum_view(
    _event: object, handoff: HandoffService, locales: Locales, lang: str
) -> dict[str, ForumView]:
    """The router's last filter: it always passes, and gives each handler `forum`."""
    return {"forum": ForumView(handoff, locales, lang)}


def make_router() -> Router:
    """A new router with this module's handlers, in the order they are tried."""
    router = Router(name=__name__)
    router.message.filter(in_officers_chat, forum_view)
    router.edited_message.filter(in_officers_chat, forum_view)
    router.message.register(officers_help, Command("help"))
    # Case and duty commands of anyone without the officer or admin role are refused first.
    router.message.register(refused, Command(*GROUP_COMMANDS, *TOPIC_COMMANDS), outsider)
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


async def outsider(message: Message, roles: set[Role]) -> bool:
    """The sender has neither the officer nor the admin role (a coroutine: `handlers.filters`)."""
    return message.from_user is None or not is_officer(roles)


async def officers_help(message: Message, forum: ForumView) -> None:
    """/help in the forum: the officers' commands (nothing in it is secret)."""
    await message.reply(forum.t("help_officers"))


async def refused(
    message: Message, command: CommandObject, session: AsyncSession, forum: ForumView
) -> None:
    """A case or duty command from an outsider: refused, and the refusal audited."""
    await refusals.not_an_officer(
        session,
        actor_id=message.from_user.id if message.from_user else None,
        chat_id=message.chat.id,
        what=f"/{command.command}",
    )
    await message.reply(forum.t("ho_not_officer"))


async def group_command(
    message: Message, command: CommandObject, session: AsyncSession, forum: ForumView
) -> None:
    """/cases, /onduty, /offduty anywhere in the forum."""
    user = message.from_user
    assert user is not None  # a command without a sender is refused first
    if command.command in ("onduty", "offduty"):
        on = command.command == "onduty"
        if not await forum.handoff.set_duty(session, user.id, on):
            await message.reply(forum.t("ho_no_role"))
            return
        await message.reply(forum.t("ho_onduty" if on else "ho_offduty"))
        return
    cases = await forum.handoff.open_cases(session)
    if not cases:
        await message.reply(forum.t("ho_cases_none"))
        return
    now = datetime.now(UTC)
    lines = [forum.t("ho_cases_title", count=len(cases))]
    for case, citizen in cases[:MAX_LISTED]:
        line = forum.t(
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
        lines.append(forum.t("ho_cases_more", count=len(cases) - MAX_LISTED))
    for i, text in enumerate(split_html_lines(lines)):
        if i == 0:
            await message.reply(text, disable_web_page_preview=True)
        else:
            await message.answer(text, disable_web_page_preview=True)


async def topic_command(
    message: Message, command: CommandObject, session: AsyncSession, forum: ForumView
) -> None:
    """/claim, /close [note], /note text, /ban, /unban, /transfer inside a case topic."""
    user = message.from_user
    assert user is not None  # a command without a sender is refused first
    case = await forum.handoff.case_by_topic(session, message.chat.id, thread_of(message))
    if case is None:
        await message.reply(forum.t("ho_not_in_case_topic"))
        return
    name = await forum.handoff.staff_name(session, user.id)
    if command.command == "note":
        if not (command.args or "").strip():
            await message.reply(forum.t("ho_note_empty"))
            return
        await forum.handoff.add_note(session, case, user.id, command.args.strip())  # type: ignore[union-attr]
        await message.reply(forum.t("ho_note_saved"))
        return
    if command.command in ("ban", "unban"):
        banned = command.command == "ban"
        citizen = await forum.handoff.set_ban(session, case, user.id, banned)
        label = citizen_label(citizen)
        await message.reply(forum.t("ho_banned" if banned else "ho_unbanned", name=label))
        return
    if case.status == CaseStatus.CLOSED:
        await message.reply(forum.t("ho_already_closed"))
        return
    if command.command == "claim":
        previous = await forum.handoff.claim(session, case, user.id)
        if previous is not None:
            before = await forum.handoff.staff_name(session, previous)
            text = forum.t("ho_claimed_over", officer=name, previous=before)
        else:
            text = forum.t("ho_claimed", officer=name)
        await message.reply(text)
    elif command.command == "transfer":
        await forum.handoff.transfer(session, case, user.id)
        await message.reply(forum.t("ho_transferred", officer=name))
    elif command.command == "close":
        await forum.handoff.close(session, case, user.id, (command.args or "").strip() or None)


async def unknown_command(message: Message, forum: ForumView) -> None:
    """Any other command in a case topic is not relayed."""
    if thread_of(message) is not None:
        await message.reply(forum.t("ho_unknown_command"))


async def topic_message(
    message: Message, session: AsyncSession, roles: set[Role], forum: ForumView
) -> None:
    """A message in a case topic: an officer's is copied to the citizen as the bot."""
    user = message.from_user
    if user is None or user.is_bot or content_kind(message) not in RELAYABLE:
        return
    case = await forum.handoff.case_by_topic(session, message.chat.id, thread_of(message))
    if case is None:
        return  # chatter in General or in a topic that is not a case
    if not is_officer(roles):
        await refusals.not_relayed(
            session, actor_id=user.id, case_id=case.id, message_id=message.message_id
        )
        await message.reply(forum.t("ho_outsider_not_relayed"))
        return
    if case.status == CaseStatus.CLOSED:
        await message.reply(forum.t("ho_case_closed_not_sent"))
        return
    claimed = await forum.handoff.store_officer_message(
        session,
        case,
        user.id,
        message.message_id,
        content_kind(message),
        message.text or message.caption,
    )
    if claimed:
        name = await forum.handoff.staff_name(session, user.id)
        await message.answer(forum.t("ho_claimed", officer=name))
    await forum.handoff.flush_case(case.id)


async def topic_edit(
    message: Message, session: AsyncSession, roles: set[Role], forum: ForumView
) -> None:
    """An officer edited a relayed message: the citizen's copy is edited too."""
    if message.from_user is None or not is_officer(roles) or thread_of(message) is None:
        return
    await forum.handoff.relay_officer_edit(
        session,
        message.chat.id,
        message.message_id,
        message.html_text,
        is_caption=message.text is None,
    )

"""Forum supergroups: topics, topic messages, General, closed and deleted topics."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import ReplyParameters

from bot.emulator.client import EmulatorClient, EmulatorClientError
from bot.emulator.server import EmulatorServer

OFFICER = 8
SERGEANT = 9
CONSTABLE = 10


@pytest.fixture
async def forum(emu: EmulatorClient) -> int:
    """The duty officers' forum: the bot and two officers, one of them the owner."""
    chat = await emu.create_forum(members=[OFFICER], admins=[SERGEANT])
    assert chat["is_forum"] is True
    return int(chat["id"])


async def test_create_topic_posts_the_service_message(
    bot: Bot, emu: EmulatorClient, forum: int
) -> None:
    topic = await bot.create_forum_topic(forum, "Case #1 · lost wallet")
    assert topic.name == "Case #1 · lost wallet"
    assert topic.icon_color == 7322096
    assert topic.message_thread_id > 1
    service = (await emu.transcript(forum))[-1]["message"]
    assert service["message_id"] == topic.message_thread_id
    assert service["message_thread_id"] == topic.message_thread_id
    assert service["is_topic_message"] is True
    assert service["forum_topic_created"] == {"name": topic.name, "icon_color": 7322096}
    listed = await emu.topics(forum)
    assert [(t["message_thread_id"], t["is_closed"]) for t in listed] == [
        (topic.message_thread_id, False)
    ]


async def test_topic_messages_carry_thread_and_anchor_reply(
    bot: Bot, emu: EmulatorClient, forum: int
) -> None:
    topic = await bot.create_forum_topic(forum, "Case #2")
    tid = topic.message_thread_id
    sent = await bot.send_message(forum, "Citizen says: help", message_thread_id=tid)
    assert sent.message_thread_id == tid
    assert sent.is_topic_message is True
    # Inside a topic every message is a reply to the topic's creation message.
    assert sent.reply_to_message is not None
    assert sent.reply_to_message.forum_topic_created is not None
    officer_msg = await emu.user(OFFICER).send("On my way", chat_id=forum, thread_id=tid)
    assert officer_msg["message_thread_id"] == tid
    assert officer_msg["is_topic_message"] is True
    updates = await bot.get_updates()
    incoming = updates[-1].message
    assert incoming is not None
    assert (incoming.message_thread_id, incoming.is_topic_message) == (tid, True)
    assert incoming.from_user is not None
    assert incoming.from_user.id == OFFICER
    reply = await emu.wait_bot_message(forum, thread_id=tid)
    assert reply["text"] == "Citizen says: help"


async def test_general_messages_and_replies_have_no_topic_flag(
    bot: Bot, emu: EmulatorClient, forum: int
) -> None:
    general = await emu.user(OFFICER).send("Shift starts", chat_id=forum)
    assert "message_thread_id" not in general
    assert "is_topic_message" not in general
    bot_msg = await bot.send_message(forum, "Noted")
    reply = await emu.user(OFFICER).send("ok", chat_id=forum, reply_to=bot_msg.message_id)
    # A reply in General starts a reply thread: a thread id but no is_topic_message, and
    # that id is not a topic, which is how bots that echo it back crash.
    assert reply["message_thread_id"] == bot_msg.message_id
    assert "is_topic_message" not in reply
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message(forum, "echo", message_thread_id=reply["message_thread_id"])


async def test_unknown_and_deleted_topics_are_thread_not_found(
    bot: Bot, emu: EmulatorClient, forum: int
) -> None:
    with pytest.raises(TelegramBadRequest, match="Bad Request: message thread not found"):
        await bot.send_message(forum, "x", message_thread_id=424242)
    topic = await bot.create_forum_topic(forum, "Case #3")
    await emu.delete_topic(forum, topic.message_thread_id)
    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message(forum, "x", message_thread_id=topic.message_thread_id)
    other = await bot.create_forum_topic(forum, "Case #4")
    assert await bot.delete_forum_topic(forum, other.message_thread_id) is True
    assert await emu.topics(forum) == []


async def test_closed_topic_refuses_bot_messages_until_reopened(
    bot: Bot, emu: EmulatorClient
) -> None:
    # A bot that is admin without can_manage_topics is refused like any member.
    chat = await emu.create_forum(
        members=[OFFICER, CONSTABLE], admins=[SERGEANT], bot_can_manage_topics=False
    )
    forum = int(chat["id"])
    topic = await emu.create_topic(forum, OFFICER, "Case #5")
    tid = topic["message_thread_id"]
    officer_msg = await emu.user(OFFICER).send("first note", chat_id=forum, thread_id=tid)
    await emu.close_topic(forum, tid)
    with pytest.raises(TelegramBadRequest, match="Bad Request: TOPIC_CLOSED"):
        await bot.send_message(forum, "x", message_thread_id=tid)
    with pytest.raises(TelegramBadRequest, match="Bad Request: TOPIC_CLOSED"):
        await bot.send_message(
            forum, "x", reply_parameters=ReplyParameters(message_id=officer_msg["message_id"])
        )
    with pytest.raises(TelegramBadRequest, match="not enough rights to close or open the topic"):
        await bot.reopen_forum_topic(forum, tid)
    with pytest.raises(EmulatorClientError, match="closed"):
        await emu.user(CONSTABLE).send("x", chat_id=forum, thread_id=tid)
    # The topic's creator and admins with can_manage_topics may still write in it.
    await emu.user(OFFICER).send("still here", chat_id=forum, thread_id=tid)
    await emu.user(SERGEANT).send("closing note", chat_id=forum, thread_id=tid)
    await emu.reopen_topic(forum, tid)
    assert (await bot.send_message(forum, "back", message_thread_id=tid)).message_thread_id == tid


async def test_closed_topic_still_takes_the_bot_when_it_may_manage_topics(
    bot: Bot, emu: EmulatorClient, forum: int
) -> None:
    opened_by_officer = await emu.create_topic(forum, OFFICER, "Case #8")
    tid = opened_by_officer["message_thread_id"]
    await emu.close_topic(forum, tid)
    # An admin with can_manage_topics posts into a closed topic.
    assert (await bot.send_message(forum, "x", message_thread_id=tid)).message_thread_id == tid
    member = await bot.get_chat_member(forum, bot.id)
    assert getattr(member, "can_manage_topics", None) is True
    with pytest.raises(TelegramBadRequest, match="TOPIC_NOT_MODIFIED"):
        await bot.close_forum_topic(forum, tid)


async def test_closed_topic_still_takes_the_bot_that_opened_it(
    bot: Bot, emu: EmulatorClient, server: EmulatorServer, forum: int
) -> None:
    topic = await bot.create_forum_topic(forum, "Case #9")
    tid = topic.message_thread_id
    # The bot loses can_manage_topics after opening the topic: as its creator it may still post
    # into it and close or reopen it.
    server.emulator.chats[forum].admins_without_topic_rights.add(bot.id)
    await emu.close_topic(forum, tid)
    assert (await bot.send_message(forum, "x", message_thread_id=tid)).message_thread_id == tid
    assert await bot.reopen_forum_topic(forum, tid) is True
    member = await bot.get_chat_member(forum, bot.id)
    assert getattr(member, "can_manage_topics", None) is False


async def test_creating_a_topic_needs_can_manage_topics(bot: Bot, emu: EmulatorClient) -> None:
    chat = await emu.create_forum(members=[OFFICER], bot_can_manage_topics=False)
    with pytest.raises(
        TelegramBadRequest, match="Bad Request: not enough rights to create a topic"
    ):
        await bot.create_forum_topic(chat["id"], "Case #10")
    not_admin = await emu.create_forum(members=[OFFICER], bot_is_admin=False)
    with pytest.raises(
        TelegramBadRequest, match="Bad Request: not enough rights to create a topic"
    ):
        await bot.create_forum_topic(not_admin["id"], "Case #10")
    assert await emu.topics(chat["id"]) == []


async def test_general_thread_one_is_thread_not_found(
    bot: Bot, emu: EmulatorClient, forum: int
) -> None:
    with pytest.raises(TelegramBadRequest, match="Bad Request: message thread not found"):
        await bot.send_message(forum, "x", message_thread_id=1)
    with pytest.raises(TelegramBadRequest, match="Bad Request: message thread not found"):
        await bot.send_chat_action(forum, "typing", message_thread_id=1)
    # Without a thread id the message goes to General.
    general = await bot.send_message(forum, "x")
    assert general.message_thread_id is None


async def test_long_topic_name_is_cut_to_128_characters(
    bot: Bot, emu: EmulatorClient, forum: int
) -> None:
    long_name = "Case #11 " + "é" * 200
    topic = await bot.create_forum_topic(forum, long_name)
    assert topic.name == long_name[:128]
    assert (await emu.topics(forum))[0]["name"] == long_name[:128]
    spaced = await bot.create_forum_topic(forum, "  Case   #12 \n lost  ")
    assert spaced.name == "Case #12 lost"
    with pytest.raises(TelegramBadRequest, match="Bad Request: name must be non-empty"):
        await bot.create_forum_topic(forum, "   ")
    assert await bot.edit_forum_topic(forum, topic.message_thread_id, name="x" * 300) is True
    assert (await emu.topics(forum))[0]["name"] == "x" * 128


async def test_edit_topic_and_non_forum_chat(bot: Bot, emu: EmulatorClient, forum: int) -> None:
    topic = await bot.create_forum_topic(forum, "Case #6")
    assert await bot.edit_forum_topic(forum, topic.message_thread_id, name="Case #6 ✔") is True
    assert (await emu.topics(forum))[0]["name"] == "Case #6 ✔"
    with pytest.raises(TelegramBadRequest, match="TOPIC_NOT_MODIFIED"):
        await bot.edit_forum_topic(forum, topic.message_thread_id, name="Case #6 ✔")
    plain = await emu.create_group(members=[OFFICER])
    with pytest.raises(TelegramBadRequest, match="the chat is not a forum"):
        await bot.create_forum_topic(plain["id"], "x")


async def test_officer_can_open_a_topic_and_the_bot_sees_it(
    bot: Bot, emu: EmulatorClient, forum: int
) -> None:
    topic = await emu.create_topic(forum, SERGEANT, "Briefing")
    updates = await bot.get_updates()
    created = updates[-1].message
    assert created is not None
    assert created.forum_topic_created is not None
    assert created.message_thread_id == topic["message_thread_id"]


async def test_copy_into_topic_for_handoff(bot: Bot, emu: EmulatorClient, forum: int) -> None:
    topic = await bot.create_forum_topic(forum, "Case #7")
    citizen_msg = await emu.user(42).send("someone is following me")
    copied = await bot.copy_message(
        forum, 42, citizen_msg["message_id"], message_thread_id=topic.message_thread_id
    )
    copy = await emu.wait_bot_message(forum, thread_id=topic.message_thread_id)
    assert copy["message_id"] == copied.message_id
    assert copy["text"] == "someone is following me"
    officer_reply = await emu.user(OFFICER).send(
        "Stay in a public place", chat_id=forum, reply_to=copied.message_id
    )
    # Replying to a topic message keeps the reply inside that topic.
    assert officer_reply["message_thread_id"] == topic.message_thread_id
    assert officer_reply["is_topic_message"] is True
    assert officer_reply["reply_to_message"]["message_id"] == copied.message_id


async def test_privacy_mode_hides_chatter_from_a_non_admin_bot(
    bot: Bot, emu: EmulatorClient
) -> None:
    group = await emu.create_group(members=[OFFICER], bot_is_admin=False)
    gid = int(group["id"])
    await emu.user(OFFICER).send("lunch anyone?", chat_id=gid)
    await emu.user(OFFICER).send("/status", chat_id=gid)
    await emu.user(OFFICER).send("ping @safewell_bot", chat_id=gid)
    bot_msg = await bot.send_message(gid, "Status: 3 open cases")
    await emu.user(OFFICER).send("thanks", chat_id=gid, reply_to=bot_msg.message_id)
    seen = [u.message.text for u in await bot.get_updates() if u.message]
    assert seen == ["/status", "ping @safewell_bot", "thanks"]

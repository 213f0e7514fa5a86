"""Messages: formatting, validation, edits, deletion, buttons, copy/forward and files."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    InaccessibleMessage,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    MessageOriginHiddenUser,
    MessageOriginUser,
    ReplyKeyboardMarkup,
    ReplyParameters,
)

from bot.emulator.client import EmulatorClient
from bot.emulator.markup import UrlError, check_url

PNG_16x32 = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x20" + b"\x00" * 16


def _keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=t, callback_data=d)] for t, d in pairs]
    )


@pytest.fixture
async def citizen_chat(emu: EmulatorClient) -> int:
    """A private chat that the citizen opened by writing first."""
    await emu.user(42).send("hi")
    return 42


async def test_html_becomes_entities_with_utf16_offsets(bot: Bot, citizen_chat: int) -> None:
    sent = await bot.send_message(
        citizen_chat,
        '🚓 <b>Police</b> &amp; <a href="https://example.org">site</a> '
        '<span class="tg-spoiler">x</span> <blockquote expandable>q</blockquote>',
        parse_mode="HTML",
    )
    assert sent.text == "🚓 Police & site x q"
    kinds = [(e.type, e.offset, e.length) for e in sent.entities or []]
    # The police-car emoji is two UTF-16 code units, so "Police" starts at 3.
    assert kinds == [
        ("bold", 3, 6),
        ("text_link", 12, 4),
        ("spoiler", 17, 1),
        ("expandable_blockquote", 19, 1),
    ]
    assert sent.entities is not None
    assert sent.entities[1].url == "https://example.org"


@pytest.mark.parametrize(
    ("html", "fragment"),
    [
        ("<b>open", "Can't find end tag corresponding to start tag"),
        ("<div>x</div>", 'Unsupported start tag "div"'),
        ("<b>x</i>", "Unmatched end tag"),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("<x>y</x>", 'Unsupported start tag "x" at byte offset 0'),
        ('<a href=https://example.org">x</a>', "Unexpected end of name token at byte offset 8"),
        ('<span class="red">x</span>', "tg-spoiler"),
    ],
)
async def test_bad_html_is_cant_parse_entities(
    bot: Bot, citizen_chat: int, html: str, fragment: str
) -> None:
    with pytest.raises(TelegramBadRequest, match="can't parse entities") as caught:
        await bot.send_message(citizen_chat, html, parse_mode="HTML")
    assert fragment in caught.value.message


async def test_text_length_is_checked_after_entity_parsing(bot: Bot, citizen_chat: int) -> None:
    exactly = "<b>" + "x" * 4096 + "</b>"
    assert (
        len((await bot.send_message(citizen_chat, exactly, parse_mode="HTML")).text or "") == 4096
    )
    with pytest.raises(TelegramBadRequest, match="Bad Request: message is too long"):
        await bot.send_message(citizen_chat, "x" * 4097)


async def test_empty_text_is_refused(bot: Bot, citizen_chat: int) -> None:
    # No text at all and text that parses or trims to nothing are worded differently.
    with pytest.raises(TelegramBadRequest) as caught:
        await bot.send_message(citizen_chat, "")
    assert caught.value.message == "Bad Request: message text is empty"
    with pytest.raises(TelegramBadRequest) as caught:
        await bot.send_message(citizen_chat, "   ")
    assert caught.value.message == "Bad Request: text must be non-empty"
    with pytest.raises(TelegramBadRequest) as caught:
        await bot.send_message(citizen_chat, "<b></b>", parse_mode="HTML")
    assert caught.value.message == "Bad Request: text must be non-empty"
    sent = await bot.send_message(citizen_chat, "draft")
    with pytest.raises(TelegramBadRequest, match="Bad Request: message text is empty"):
        await bot.edit_message_text("", chat_id=citizen_chat, message_id=sent.message_id)


async def test_html_error_is_worded_exactly_as_telegram(bot: Bot, citizen_chat: int) -> None:
    with pytest.raises(TelegramBadRequest) as caught:
        await bot.send_message(citizen_chat, "1 < 2", parse_mode="HTML")
    assert caught.value.message == (
        'Bad Request: can\'t parse entities: Unsupported start tag "" at byte offset 2'
    )


async def test_callback_data_longer_than_64_bytes_is_refused(bot: Bot, citizen_chat: int) -> None:
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(citizen_chat, "Pick", reply_markup=_keyboard(("A", "é" * 33)))
    ok = await bot.send_message(citizen_chat, "Pick", reply_markup=_keyboard(("A", "é" * 32)))
    assert ok.reply_markup is not None


async def test_more_than_100_buttons_is_reply_markup_too_long(bot: Bot, citizen_chat: int) -> None:
    def grid(rows: int, per_row: int, extra: int = 0) -> InlineKeyboardMarkup:
        """``rows`` rows of ``per_row`` buttons, plus a last row of ``extra``."""
        sizes = [per_row] * rows + ([extra] if extra else [])
        return InlineKeyboardMarkup(
            inline_keyboard=[
                [InlineKeyboardButton(text=f"{r}.{c}", callback_data=f"{r}.{c}") for c in range(n)]
                for r, n in enumerate(sizes)
            ]
        )

    full = await bot.send_message(citizen_chat, "Pick", reply_markup=grid(10, 10))
    assert full.reply_markup is not None
    assert sum(len(row) for row in full.reply_markup.inline_keyboard) == 100
    with pytest.raises(TelegramBadRequest, match="Bad Request: reply markup is too long"):
        await bot.send_message(citizen_chat, "Pick", reply_markup=grid(10, 10, extra=1))
    with pytest.raises(TelegramBadRequest, match="reply markup is too long"):
        await bot.edit_message_reply_markup(
            chat_id=citizen_chat, message_id=full.message_id, reply_markup=grid(11, 10)
        )
    # Telegram keeps only the first 12 buttons of a row, and counts what it keeps.
    wide = await bot.send_message(citizen_chat, "Pick", reply_markup=grid(8, 13))
    assert wide.reply_markup is not None
    assert [len(row) for row in wide.reply_markup.inline_keyboard] == [12] * 8
    assert wide.reply_markup.inline_keyboard[0][-1].callback_data == "0.11"


async def test_a_button_with_a_url_is_a_url_button(
    bot: Bot, emu: EmulatorClient, citizen_chat: int
) -> None:
    both = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="Help", url="https://example.org/help", callback_data="h")]
        ]
    )
    sent = await bot.send_message(citizen_chat, "More", reply_markup=both)
    assert sent.reply_markup is not None
    button = sent.reply_markup.inline_keyboard[0][0]
    assert (button.url, button.callback_data) == ("https://example.org/help", None)
    from bot.emulator.client import EmulatorClientError

    with pytest.raises(EmulatorClientError, match="not a callback button"):
        await emu.user(42).press(sent.message_id, text="Help")


async def test_a_url_without_scheme_is_taken_as_http(bot: Bot, citizen_chat: int) -> None:
    def link(url: str) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="Go", url=url)]])

    sent = await bot.send_message(citizen_chat, "Site", reply_markup=link("example.org/help"))
    assert sent.reply_markup is not None
    assert sent.reply_markup.inline_keyboard[0][0].url == "http://example.org/help"
    with pytest.raises(
        TelegramBadRequest,
        match="Bad Request: inline keyboard button URL 'localhost' is invalid: Wrong HTTP URL",
    ):
        await bot.send_message(citizen_chat, "Site", reply_markup=link("localhost"))
    with pytest.raises(TelegramBadRequest, match="is invalid: Unsupported URL protocol"):
        await bot.send_message(citizen_chat, "Site", reply_markup=link("ftp://example.org"))


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("example.org", "http://example.org/"),
        ("HTTPS://Example.ORG/Path?q=1", "https://example.org/Path?q=1"),
        ("https://example.org/a b", "https://example.org/a%20b"),
        ("http://example.org:8080", "http://example.org:8080/"),
        ("tg://resolve?domain=safewell_bot", "tg://resolve?domain=safewell_bot"),
    ],
)
def test_button_urls_are_stored_as_telegram_normalises_them(given: str, stored: str) -> None:
    assert check_url(given) == stored


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("localhost", "Wrong HTTP URL"),
        ("ftp://example.org", "Unsupported URL protocol"),
        ("not a url", "Disallowed character in URL host"),
        ("http://example.org:70000/", "Wrong port number specified in the URL"),
        ("https://", "URL host is empty"),
        ("tg://res.olve", "Unallowed characters in URL host"),
    ],
)
def test_bad_button_urls_give_telegrams_reason(given: str, reason: str) -> None:
    with pytest.raises(UrlError, match=reason):
        check_url(given)


async def test_edit_text_and_not_modified(bot: Bot, emu: EmulatorClient, citizen_chat: int) -> None:
    sent = await bot.send_message(citizen_chat, "Draft", reply_markup=_keyboard(("A", "a")))
    edited = await bot.edit_message_text(
        "Final",
        chat_id=citizen_chat,
        message_id=sent.message_id,
        reply_markup=_keyboard(("A", "a")),
    )
    assert not isinstance(edited, bool)
    assert edited.text == "Final"
    assert edited.edit_date is not None
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            "Final",
            chat_id=citizen_chat,
            message_id=sent.message_id,
            reply_markup=_keyboard(("A", "a")),
        )
    # Leaving reply_markup out of editMessageText removes the keyboard, as on Telegram.
    bare = await bot.edit_message_text("Final", chat_id=citizen_chat, message_id=sent.message_id)
    assert not isinstance(bare, bool)
    assert bare.reply_markup is None
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=citizen_chat, message_id=9999)
    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        await bot.edit_message_text("x", chat_id=citizen_chat, message_id=1)
    transcript = await emu.transcript(citizen_chat)
    assert [e["before"]["text"] for e in transcript[1]["edits"]] == ["Draft", "Final"]


async def test_edit_reply_markup_and_delete(
    bot: Bot, emu: EmulatorClient, citizen_chat: int
) -> None:
    sent = await bot.send_message(citizen_chat, "Pick", reply_markup=_keyboard(("A", "a")))
    changed = await bot.edit_message_reply_markup(
        chat_id=citizen_chat, message_id=sent.message_id, reply_markup=_keyboard(("B", "b"))
    )
    assert not isinstance(changed, bool)
    assert changed.reply_markup is not None
    assert changed.reply_markup.inline_keyboard[0][0].text == "B"
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(
            chat_id=citizen_chat, message_id=sent.message_id, reply_markup=_keyboard(("B", "b"))
        )
    assert await bot.delete_message(citizen_chat, sent.message_id) is True
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(citizen_chat, sent.message_id)
    entry = next(
        e
        for e in await emu.transcript(citizen_chat)
        if e["message"]["message_id"] == sent.message_id
    )
    assert entry["deleted"] is True


async def test_a_message_older_than_48_hours_cannot_be_deleted(
    bot: Bot, emu: EmulatorClient, citizen_chat: int
) -> None:
    old = await bot.send_message(citizen_chat, "sent two days ago")
    recent = await bot.send_message(citizen_chat, "sent yesterday")
    aged = await emu.age_message(citizen_chat, old.message_id, 48 * 3600)
    assert aged["message"]["date"] <= old.date.timestamp() - 48 * 3600
    await emu.age_message(citizen_chat, recent.message_id, 47 * 3600)
    with pytest.raises(TelegramBadRequest, match="Bad Request: message can't be deleted"):
        await bot.delete_message(citizen_chat, old.message_id)
    assert await bot.delete_message(citizen_chat, recent.message_id) is True
    # Being admin does not lift the limit in a group either.
    group = await emu.create_group(members=[7])
    said = await emu.user(7).send("old news", chat_id=group["id"])
    await emu.age_message(group["id"], said["message_id"], 49 * 3600)
    with pytest.raises(TelegramBadRequest, match="message can't be deleted"):
        await bot.delete_message(group["id"], said["message_id"])


async def test_button_press_arrives_and_can_be_answered_once(
    bot: Bot, emu: EmulatorClient, citizen_chat: int
) -> None:
    sent = await bot.send_message(
        citizen_chat, "Was this helpful?", reply_markup=_keyboard(("👍", "fb:1"), ("👎", "fb:0"))
    )
    await emu.user(42).press(sent.message_id, text="👎")
    updates = await bot.get_updates()
    query = updates[-1].callback_query
    assert query is not None
    assert query.data == "fb:0"
    assert query.from_user.id == 42
    assert query.chat_instance
    assert query.message is not None
    assert query.message.message_id == sent.message_id
    assert await bot.answer_callback_query(query.id, text="Thanks") is True
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query.id)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query("12345")


async def test_late_answer_is_too_old(
    bot: Bot, emu: EmulatorClient, server_config_short_callback: None, citizen_chat: int
) -> None:
    sent = await bot.send_message(citizen_chat, "Pick", reply_markup=_keyboard(("A", "a")))
    query = await emu.user(42).press(sent.message_id, data="a")
    import asyncio

    await asyncio.sleep(0.3)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query["id"])


@pytest.fixture
def server_config_short_callback(server: object) -> None:
    """Make callback answers expire after 0.2 s instead of Telegram's ~15 s."""
    from bot.emulator.server import EmulatorServer

    assert isinstance(server, EmulatorServer)
    server.emulator.config.callback_answer_timeout = 0.2


async def test_forged_button_cannot_be_pressed_but_can_be_injected(
    bot: Bot, emu: EmulatorClient, citizen_chat: int
) -> None:
    from bot.emulator.client import EmulatorClientError

    sent = await bot.send_message(citizen_chat, "Pick", reply_markup=_keyboard(("A", "a")))
    with pytest.raises(EmulatorClientError, match="no such button"):
        await emu.user(42).press(sent.message_id, data="admin:delete_all")
    await emu.inject_callback(42, sent.message_id, "admin:delete_all")
    updates = await bot.get_updates()
    assert updates[-1].callback_query is not None
    assert updates[-1].callback_query.data == "admin:delete_all"


async def test_press_on_deleted_message_arrives_as_inaccessible(
    bot: Bot, emu: EmulatorClient, citizen_chat: int
) -> None:
    sent = await bot.send_message(citizen_chat, "Pick", reply_markup=_keyboard(("A", "a")))
    await bot.delete_message(citizen_chat, sent.message_id)
    await emu.user(42).press(sent.message_id, data="a")
    query = (await bot.get_updates())[-1].callback_query
    assert query is not None
    assert query.message is not None
    assert isinstance(query.message, InaccessibleMessage)


async def test_reply_parameters_and_missing_target(bot: Bot, emu: EmulatorClient) -> None:
    asked = await emu.user(42).send("Where is the station?")
    reply = await bot.send_message(
        42, "Main St 1", reply_parameters=ReplyParameters(message_id=asked["message_id"])
    )
    assert reply.reply_to_message is not None
    assert reply.reply_to_message.text == "Where is the station?"
    legacy = await bot.send_message(42, "again", reply_to_message_id=asked["message_id"])
    assert legacy.reply_to_message is not None
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(42, "x", reply_parameters=ReplyParameters(message_id=999))
    loose = await bot.send_message(
        42,
        "x",
        reply_parameters=ReplyParameters(message_id=999, allow_sending_without_reply=True),
    )
    assert loose.reply_to_message is None


async def test_reply_keyboard_is_kept_for_the_user_not_in_the_result(
    bot: Bot, emu: EmulatorClient, citizen_chat: int
) -> None:
    markup = ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text="Share my number", request_contact=True)]],
        resize_keyboard=True,
    )
    sent = await bot.send_message(citizen_chat, "Your number?", reply_markup=markup)
    assert sent.reply_markup is None
    entry = await emu.wait_bot_entry(citizen_chat)
    assert entry["chat_keyboard"]["keyboard"][0][0]["text"] == "Share my number"
    shared = await emu.user(42).send_contact("+10000000042")
    assert shared["contact"]["user_id"] == 42


async def test_user_message_kinds_validate_as_aiogram_updates(
    bot: Bot, emu: EmulatorClient
) -> None:
    citizen = emu.user(42)
    await citizen.send("/help@safewell_bot now")
    await citizen.send_photo(PNG_16x32, caption="the car")
    await citizen.send_document(b"%PDF-1.4", file_name="report.pdf")
    await citizen.send_voice(b"OggS", duration=4)
    await citizen.send_sticker("🙏")
    await citizen.send_location(31.23, 121.47)
    await citizen.send_contact("+10000000042")
    updates = await bot.get_updates()
    messages = [u.message for u in updates if u.message]
    assert len(messages) == 7
    command, photo, document, voice, sticker, location, contact = messages
    assert command.entities is not None
    assert (command.entities[0].type, command.entities[0].length) == ("bot_command", 18)
    assert photo.photo is not None
    assert (photo.photo[-1].width, photo.photo[-1].height, photo.caption) == (16, 32, "the car")
    assert document.document is not None
    assert document.document.file_name == "report.pdf"
    assert voice.voice is not None
    assert voice.voice.duration == 4
    assert sticker.sticker is not None
    assert sticker.sticker.emoji == "🙏"
    assert location.location is not None
    assert location.location.latitude == pytest.approx(31.23)
    assert contact.contact is not None
    assert contact.contact.phone_number == "+10000000042"


async def test_user_edit_arrives_as_edited_message(bot: Bot, emu: EmulatorClient) -> None:
    sent = await emu.user(42).send("my car was stolne")
    await emu.user(42).edit(sent["message_id"], "my car was stolen")
    updates = await bot.get_updates()
    edited = updates[-1].edited_message
    assert edited is not None
    assert edited.message_id == sent["message_id"]
    assert edited.text == "my car was stolen"
    assert edited.edit_date is not None


async def test_copy_message_returns_only_the_id(bot: Bot, emu: EmulatorClient) -> None:
    group = await emu.create_group(members=[7])
    original = await emu.user(42).send_photo(PNG_16x32, caption="evidence")
    copied = await bot.copy_message(group["id"], 42, original["message_id"])
    assert copied.message_id > 0
    transcript = await emu.transcript(group["id"])
    copy = transcript[-1]["message"]
    assert copy["message_id"] == copied.message_id
    assert copy["caption"] == "evidence"
    assert copy["photo"] == original["photo"]
    assert "forward_origin" not in copy
    assert copy["from"]["id"] == bot.id
    with pytest.raises(TelegramBadRequest, match="message to copy not found"):
        await bot.copy_message(group["id"], 42, 9999)


async def test_service_messages_cannot_be_copied_or_forwarded(
    bot: Bot, emu: EmulatorClient
) -> None:
    forum = await emu.create_forum(members=[7])
    topic = await bot.create_forum_topic(forum["id"], "Case")
    service_id = topic.message_thread_id  # the forum_topic_created message
    await emu.user(42).send("hi")
    with pytest.raises(TelegramBadRequest) as caught:
        await bot.copy_message(42, forum["id"], service_id)
    assert caught.value.message == "Bad Request: the message can't be copied"
    with pytest.raises(TelegramBadRequest) as caught:
        await bot.forward_message(42, forum["id"], service_id)
    assert caught.value.message == "Bad Request: the message can't be forwarded"


async def test_forward_shows_origin_or_hidden_user(bot: Bot, emu: EmulatorClient) -> None:
    group = await emu.create_group(members=[7])
    await emu.create_user(42, "Open")
    await emu.create_user(43, "Private", hide_forwards=True)
    open_msg = await emu.user(42).send("visible")
    hidden_msg = await emu.user(43).send("hidden")
    forwarded = await bot.forward_message(group["id"], 42, open_msg["message_id"])
    assert isinstance(forwarded.forward_origin, MessageOriginUser)
    assert forwarded.forward_origin.sender_user.id == 42
    hidden = await bot.forward_message(group["id"], 43, hidden_msg["message_id"])
    assert isinstance(hidden.forward_origin, MessageOriginHiddenUser)
    assert hidden.forward_origin.sender_user_name == "Private"


async def test_upload_then_download_and_reuse_file_id(bot: Bot, citizen_chat: int) -> None:
    photo = await bot.send_photo(
        citizen_chat,
        BufferedInputFile(PNG_16x32, "car.png"),
        caption="<b>Car</b>",
        parse_mode="HTML",
    )
    assert photo.photo is not None
    assert photo.caption == "Car"
    file_id = photo.photo[-1].file_id
    file = await bot.get_file(file_id)
    assert file.file_path is not None
    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None
    assert downloaded.read() == PNG_16x32
    again = await bot.send_photo(citizen_chat, file_id)
    assert again.photo is not None
    assert again.photo[-1].file_unique_id == photo.photo[-1].file_unique_id
    doc = await bot.send_document(citizen_chat, BufferedInputFile(b"a,b\n1,2\n", "cases.csv"))
    assert doc.document is not None
    assert doc.document.file_name == "cases.csv"
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_photo(citizen_chat, "not-a-file-id")
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("nope")


async def test_file_sent_by_a_user_can_be_downloaded(bot: Bot, emu: EmulatorClient) -> None:
    sent = await emu.user(42).send_voice(b"OggS-voice-bytes", duration=2)
    file = await bot.get_file(sent["voice"]["file_id"])
    assert file.file_path is not None
    data = await bot.download_file(file.file_path)
    assert data is not None
    assert data.read() == b"OggS-voice-bytes"


async def test_location_chat_action_and_commands(bot: Bot, citizen_chat: int) -> None:
    located = await bot.send_location(citizen_chat, 31.2, 121.5)
    assert located.location is not None
    assert await bot.send_chat_action(citizen_chat, "typing") is True
    with pytest.raises(TelegramBadRequest, match="wrong parameter action"):
        await bot.send_chat_action(citizen_chat, "dancing")
    commands = [
        BotCommand(command="start", description="Start"),
        BotCommand(command="human", description="Talk to an officer"),
    ]
    assert await bot.set_my_commands(commands) is True
    assert [c.command for c in await bot.get_my_commands()] == ["start", "human"]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Bad Command", description="x")])
    assert await bot.delete_my_commands() is True
    assert await bot.get_my_commands() == []


async def test_get_chat_and_member_roles(bot: Bot, emu: EmulatorClient) -> None:
    group = await emu.create_group(members=[5], admins=[6])
    info = await bot.get_chat(group["id"])
    assert info.type == "supergroup"
    assert str(info.id).startswith("-100")
    assert (await bot.get_chat_member(group["id"], 6)).status == "creator"
    assert (await bot.get_chat_member(group["id"], 5)).status == "member"
    assert (await bot.get_chat_member(group["id"], bot.id)).status == "administrator"
    await emu.create_user(9, "Outsider")
    assert (await bot.get_chat_member(group["id"], 9)).status == "left"
    await emu.user(42).send("hi")
    private = await bot.get_chat(42)
    assert private.first_name == "User 42"


async def test_pin_and_unpin(bot: Bot, emu: EmulatorClient, citizen_chat: int) -> None:
    sent = await bot.send_message(citizen_chat, "Emergency numbers: 110")
    assert await bot.pin_chat_message(citizen_chat, sent.message_id) is True
    info = await bot.get_chat(citizen_chat)
    assert info.pinned_message is not None
    assert info.pinned_message.message_id == sent.message_id
    assert await bot.unpin_chat_message(citizen_chat) is True
    assert (await bot.get_chat(citizen_chat)).pinned_message is None
    assert await bot.log_out() is True
    assert await bot.close() is True


async def test_markdown_v2_reserved_character_is_refused(bot: Bot, citizen_chat: int) -> None:
    with pytest.raises(
        TelegramBadRequest, match=r"can't parse entities: Character '\.' is reserved"
    ):
        await bot.send_message(citizen_chat, "Stay safe.", parse_mode="MarkdownV2")
    ok = await bot.send_message(citizen_chat, "*Stay* safe\\.", parse_mode="MarkdownV2")
    assert ok.text == "Stay safe."
    assert ok.entities is not None
    assert ok.entities[0].type == "bold"


async def test_edit_caption(bot: Bot, citizen_chat: int) -> None:
    photo = await bot.send_photo(citizen_chat, BufferedInputFile(PNG_16x32, "a.png"), caption="old")
    edited = await bot.edit_message_caption(
        chat_id=citizen_chat, message_id=photo.message_id, caption="<i>new</i>", parse_mode="HTML"
    )
    assert not isinstance(edited, bool)
    assert edited.caption == "new"
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_caption(
            chat_id=citizen_chat,
            message_id=photo.message_id,
            caption="<i>new</i>",
            parse_mode="HTML",
        )
    text = await bot.send_message(citizen_chat, "plain")
    with pytest.raises(TelegramBadRequest, match="there is no caption in the message to edit"):
        await bot.edit_message_caption(
            chat_id=citizen_chat, message_id=text.message_id, caption="x"
        )

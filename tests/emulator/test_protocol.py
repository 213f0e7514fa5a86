"""The HTTP protocol: encodings, envelopes, method names, tokens, and aiogram's exceptions."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import TelegramMethod

from bot.emulator.client import EmulatorClient
from bot.emulator.server import EmulatorServer
from tests.support.emulator import make_bot


class _NoSuchMethod(TelegramMethod[bool]):
    """A method Telegram does not have, to see the 404 path through aiogram."""

    __returning__ = bool
    __api_method__ = "sendTelepathy"


async def test_get_me_describes_the_bot_with_the_token_id(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == bot.id
    assert me.is_bot is True
    assert me.username == "safewell_bot"


async def test_unknown_method_is_404_not_found(bot: Bot) -> None:
    with pytest.raises(TelegramNotFound, match="Not Found"):
        await bot(_NoSuchMethod())


async def test_unregistered_token_is_401_unauthorized(server: EmulatorServer) -> None:
    stranger = make_bot(server, token="987654321:AAunknown-token")
    try:
        with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
            await stranger.get_me()
    finally:
        await stranger.session.close()


async def test_second_registered_bot_works_with_its_own_token(
    server: EmulatorServer, emu: EmulatorClient
) -> None:
    await emu.register_bot("555000111:AAsecond-bot", username="second_bot")
    second = make_bot(server, token="555000111:AAsecond-bot")
    try:
        me = await second.get_me()
    finally:
        await second.session.close()
    assert (me.id, me.username) == (555000111, "second_bot")


@pytest.mark.parametrize("encoding", ["query", "form", "json"])
async def test_every_request_encoding_and_any_method_case_is_accepted(
    server: EmulatorServer, emu: EmulatorClient, encoding: str
) -> None:
    await emu.user(42).send("hi")
    url = f"{server.base_url}/bot{server.token}/SENDMESSAGE"
    markup = {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]}
    fields = {"chat_id": "42", "text": "<i>ok</i>", "parse_mode": "HTML"}
    async with aiohttp.ClientSession() as http:
        if encoding == "query":
            request = http.get(url, params={**fields, "reply_markup": json.dumps(markup)})
        elif encoding == "form":
            request = http.post(url, data={**fields, "reply_markup": json.dumps(markup)})
        else:
            request = http.post(url, json={**fields, "chat_id": 42, "reply_markup": markup})
        async with request as response:
            body = await response.json()
    assert response.status == 200
    assert body["ok"] is True
    assert body["result"]["text"] == "ok"
    assert body["result"]["entities"] == [{"type": "italic", "offset": 0, "length": 2}]
    assert body["result"]["reply_markup"] == markup


async def test_errors_use_telegram_envelope_and_http_status(server: EmulatorServer) -> None:
    url = f"{server.base_url}/bot{server.token}/sendMessage"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data={"chat_id": "-100999", "text": "x"}) as response,
    ):
        body = await response.json()
    assert response.status == 400
    assert body == {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}


async def test_injected_429_reaches_aiogram_as_retry_after(bot: Bot, emu: EmulatorClient) -> None:
    await emu.user(42).send("hi")
    await emu.add_fault("sendMessage", "retry_after", retry_after=7)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(42, "hello")
    assert caught.value.retry_after == 7
    assert "Too Many Requests: retry after 7" in caught.value.message
    # The fault was for one call only.
    assert (await bot.send_message(42, "hello")).text == "hello"
    stats = await emu.stats()
    assert stats["too_many_requests"] == 1


@pytest.mark.parametrize(
    ("status", "description"), [(502, "Bad Gateway"), (500, "Internal Server Error")]
)
async def test_injected_5xx_reaches_aiogram_as_server_error(
    bot: Bot, emu: EmulatorClient, status: int, description: str
) -> None:
    await emu.add_fault("getMe", "server_error", status=status)
    with pytest.raises(TelegramServerError, match=description):
        await bot.get_me()


async def test_dropped_connection_is_a_network_error(bot: Bot, emu: EmulatorClient) -> None:
    await emu.add_fault("getMe", "drop")
    with pytest.raises(TelegramNetworkError):
        await bot.get_me()
    assert (await bot.get_me()).is_bot


async def test_delay_fault_slows_the_call_then_it_succeeds(bot: Bot, emu: EmulatorClient) -> None:
    await emu.add_fault("getMe", "delay", delay=0.3)
    import time

    started = time.monotonic()
    await bot.get_me()
    assert time.monotonic() - started >= 0.3


async def test_delay_longer_than_the_request_timeout_is_a_network_error(
    bot: Bot, emu: EmulatorClient
) -> None:
    await emu.add_fault("getMe", "delay", delay=2.0)
    with pytest.raises(TelegramNetworkError, match="timeout"):
        await bot.get_me(request_timeout=1)


async def test_fault_limited_to_one_chat_spares_the_others(bot: Bot, emu: EmulatorClient) -> None:
    await emu.user(42).send("hi")
    await emu.user(43).send("hi")
    await emu.add_fault("sendMessage", "server_error", count=2, chat_id=42)
    assert (await bot.send_message(43, "fine")).text == "fine"
    for _ in range(2):
        with pytest.raises(TelegramServerError):
            await bot.send_message(42, "fails")
    assert (await bot.send_message(42, "works again")).text == "works again"


async def test_blocked_user_gives_forbidden_and_my_chat_member(
    bot: Bot, emu: EmulatorClient
) -> None:
    citizen = emu.user(42)
    await citizen.send("hi")
    await citizen.block()
    with pytest.raises(TelegramForbiddenError, match="Forbidden: bot was blocked by the user"):
        await bot.send_message(42, "are you there?")
    updates = await bot.get_updates()
    change = updates[-1].my_chat_member
    assert change is not None
    assert change.chat.id == 42
    assert change.from_user.id == 42
    assert (change.old_chat_member.status, change.new_chat_member.status) == ("member", "kicked")
    assert change.new_chat_member.user.id == bot.id
    await citizen.unblock()
    updates = await bot.get_updates(offset=updates[-1].update_id + 1)
    assert updates[-1].my_chat_member is not None
    assert updates[-1].my_chat_member.new_chat_member.status == "member"
    assert (await bot.send_message(42, "welcome back")).text == "welcome back"


async def test_deactivated_user_gives_forbidden(bot: Bot, emu: EmulatorClient) -> None:
    await emu.user(42).send("hi")
    await emu.user(42).deactivate()
    with pytest.raises(TelegramForbiddenError, match="Forbidden: user is deactivated"):
        await bot.send_message(42, "hello")


async def test_bot_cannot_write_first_to_a_user(bot: Bot, emu: EmulatorClient) -> None:
    await emu.create_user(77, "Quiet")
    with pytest.raises(
        TelegramForbiddenError, match="Forbidden: bot can't initiate conversation with a user"
    ):
        await bot.send_message(77, "hello")


async def test_vanished_chat_gives_chat_not_found(bot: Bot, emu: EmulatorClient) -> None:
    group = await emu.create_group(members=[5])
    assert (await bot.send_message(group["id"], "hello")).chat.id == group["id"]
    await emu.delete_chat(group["id"])
    with pytest.raises(TelegramBadRequest, match="Bad Request: chat not found"):
        await bot.send_message(group["id"], "hello?")
    await emu.user(42).send("hi")
    await emu.delete_chat(42)
    with pytest.raises(TelegramBadRequest, match="Bad Request: chat not found"):
        await bot.send_message(42, "hello?")


async def test_get_updates_while_webhook_is_set_is_a_conflict(bot: Bot) -> None:
    await bot.set_webhook("http://127.0.0.1:9/hook")
    with pytest.raises(TelegramConflictError, match="can't use getUpdates method while webhook"):
        await bot.get_updates()
    await bot.delete_webhook()
    assert await bot.get_updates() == []

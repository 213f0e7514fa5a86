"""The JSON control API: events after a cursor, transcripts, call log, stats, reset, webhooks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.methods import SendMessage
from aiogram.types import Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot.emulator.client import EmulatorClient, EmulatorClientError
from bot.emulator.server import EmulatorServer
from tests.support.web import serving


async def test_events_long_poll_returns_new_events_after_a_cursor(
    bot: Bot, emu: EmulatorClient
) -> None:
    state = await emu.state()
    cursor = state["cursor"]
    waiting = asyncio.create_task(emu.events(after=cursor, timeout=5))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await emu.user(42).send("hello")
    events = await asyncio.wait_for(waiting, 5)
    assert events[0]["type"] == "message"
    assert events[0]["from_bot"] is False
    assert events[0]["message"]["text"] == "hello"
    await bot.send_message(42, "hi back")
    await bot.send_chat_action(42, "typing")
    later = await emu.events(after=events[-1]["cursor"])
    assert [(e["type"], e.get("from_bot")) for e in later] == [
        ("message", True),
        ("chat_action", None),
    ]
    assert later[0]["cursor"] == events[-1]["cursor"] + 1


async def test_transcript_has_both_directions_edits_and_deletions(
    bot: Bot, emu: EmulatorClient
) -> None:
    await emu.user(42).send("hello")
    first = await bot.send_message(42, "one")
    await bot.send_message(42, "two")
    await bot.edit_message_text("one!", chat_id=42, message_id=first.message_id)
    await bot.delete_message(42, first.message_id + 1)
    transcript = await emu.transcript(42)
    assert [(e["from_bot"], e["message"]["text"], e["deleted"]) for e in transcript] == [
        (False, "hello", False),
        (True, "one!", False),
        (True, "two", True),
    ]
    assert len(transcript[1]["edits"]) == 1


async def test_wait_bot_message_returns_each_message_once_then_times_out(
    bot: Bot, emu: EmulatorClient
) -> None:
    await emu.user(42).send("hello")
    await bot.send_message(42, "first")
    await bot.send_message(42, "second")
    assert (await emu.wait_bot_message(42))["text"] == "first"
    assert (await emu.wait_bot_message(42))["text"] == "second"
    with pytest.raises(TimeoutError):
        await emu.wait_bot_message(42, timeout=0.2)


async def test_call_log_and_per_method_stats(bot: Bot, emu: EmulatorClient) -> None:
    await emu.user(42).send("hello")
    await bot.send_message(42, "a")
    await bot.get_me()
    with pytest.raises(Exception, match="chat not found"):
        await bot.send_message(-100123, "b")
    calls = await emu.calls("sendMessage")
    assert [c["params"]["chat_id"] for c in calls] == ["42", "-100123"]
    assert calls[1]["error_code"] == 400
    stats = await emu.stats()
    assert stats["calls"]["sendmessage"] == 2
    assert stats["calls"]["getme"] == 1
    assert stats["errors"]["400"] == 1


async def test_reset_forgets_the_world(bot: Bot, emu: EmulatorClient) -> None:
    await emu.user(42).send("hello")
    await emu.create_forum(members=[5])
    await emu.reset()
    state = await emu.state()
    assert state["chats"] == []
    assert state["private_chats"] == []
    assert [b["id"] for b in state["bots"]] == [bot.id]
    assert await bot.get_updates() == []


async def test_control_errors_are_json(server: EmulatorServer) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{server.base_url}/_emulator/users/42/press", json={"message_id": 5, "data": "x"}
        ) as response,
    ):
        body = await response.json()
    assert response.status == 404
    assert body["ok"] is False
    assert "no message 5" in body["error"]


async def test_unknown_fault_kind_is_refused(emu: EmulatorClient) -> None:
    with pytest.raises(EmulatorClientError, match="unknown fault kind"):
        await emu.add_fault("sendMessage", "meteor")


@pytest.fixture
async def webhook_app(bot: Bot) -> AsyncIterator[tuple[str, Dispatcher]]:
    """An aiogram webhook receiver that answers inside the webhook response."""
    dp = Dispatcher()

    @dp.message(F.text)
    async def echo(message: Message) -> SendMessage:
        return message.answer(f"Got: {message.text}")

    app = web.Application()
    SimpleRequestHandler(dp, bot, secret_token="hook-secret", handle_in_background=False).register(
        app, path="/webhook"
    )
    async with serving(app, shutdown_timeout=0.5) as base:
        yield f"{base}/webhook", dp


async def test_aiogram_webhook_receiver_gets_updates_and_replies_in_the_response(
    bot: Bot, emu: EmulatorClient, webhook_app: tuple[str, Dispatcher]
) -> None:
    url, _ = webhook_app
    await bot.set_webhook(url, secret_token="hook-secret")
    await emu.user(42).send("lost dog")
    reply = await emu.wait_bot_message(42, timeout=5)
    assert reply["text"] == "Got: lost dog"


async def test_wrong_secret_is_rejected_by_aiogram_and_retried(
    bot: Bot, emu: EmulatorClient, webhook_app: tuple[str, Dispatcher]
) -> None:
    url, _ = webhook_app
    await bot.set_webhook(url, secret_token="wrong-secret")
    await emu.user(42).send("hello")
    await asyncio.sleep(0.3)
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 1
    assert info.last_error_message is not None
    assert "401" in info.last_error_message
    await bot.set_webhook(url, secret_token="hook-secret")
    reply = await emu.wait_bot_message(42, timeout=5)
    assert reply["text"] == "Got: hello"


async def test_age_message_moves_the_date_back_and_refuses_nonsense(
    bot: Bot, emu: EmulatorClient
) -> None:
    sent = await emu.user(42).send("hello")
    aged = await emu.age_message(42, sent["message_id"], 3600)
    assert aged["message"]["date"] == sent["date"] - 3600
    transcript = await emu.transcript(42)
    assert transcript[0]["message"]["date"] == sent["date"] - 3600
    with pytest.raises(EmulatorClientError, match="no message 999"):
        await emu.age_message(42, 999, 10)
    with pytest.raises(EmulatorClientError, match="must not be negative"):
        await emu.age_message(42, sent["message_id"], -5)

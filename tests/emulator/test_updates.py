"""Receiving updates: long polling, acknowledgement, filters, conflicts, webhooks, Dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.exceptions import TelegramBadRequest, TelegramConflictError
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiohttp import web

from bot.emulator.client import EmulatorClient
from tests.support.processes import free_port
from tests.support.web import serving


async def test_long_poll_wakes_as_soon_as_a_user_writes(bot: Bot, emu: EmulatorClient) -> None:
    async def write_later() -> None:
        await asyncio.sleep(0.3)
        await emu.user(42).send("hello")

    writer = asyncio.create_task(write_later())
    started = time.monotonic()
    updates = await bot.get_updates(timeout=10)
    elapsed = time.monotonic() - started
    await writer
    assert 0.25 <= elapsed < 5
    assert [u.message.text for u in updates if u.message] == ["hello"]


async def test_long_poll_returns_empty_after_its_timeout(bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == []
    assert time.monotonic() - started >= 0.9


async def test_offset_acknowledges_lower_ids_and_limit_caps(bot: Bot, emu: EmulatorClient) -> None:
    for text in ("one", "two", "three"):
        await emu.user(42).send(text)
    first = await bot.get_updates(limit=2)
    assert [u.message.text for u in first if u.message] == ["one", "two"]
    assert first[1].update_id == first[0].update_id + 1
    # Without an offset nothing is acknowledged: the same updates come again.
    again = await bot.get_updates()
    assert [u.update_id for u in again][:2] == [u.update_id for u in first]
    rest = await bot.get_updates(offset=first[-1].update_id + 1)
    assert [u.message.text for u in rest if u.message] == ["three"]
    assert (await bot.get_webhook_info()).pending_update_count == 1
    assert await bot.get_updates(offset=rest[-1].update_id + 1) == []


async def test_allowed_updates_is_remembered(bot: Bot, emu: EmulatorClient) -> None:
    await bot.get_updates(allowed_updates=["callback_query"])
    await emu.user(42).send("ignored text")
    sent = await bot.send_message(
        42,
        "Pick",
        reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="A", callback_data="a")]]
        ),
    )
    await emu.user(42).press(sent.message_id, text="A")
    # The filter sticks for later calls that do not repeat it.
    updates = await bot.get_updates()
    assert [u.callback_query.data for u in updates if u.callback_query] == ["a"]
    assert all(u.message is None for u in updates)


async def test_overlapping_long_polls_terminate_the_older_one(bot: Bot) -> None:
    older = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    newer = asyncio.create_task(bot.get_updates(timeout=1))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await older
    assert await newer == []


@contextlib.asynccontextmanager
async def _receiver(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]], port: int = 0
) -> AsyncIterator[str]:
    """A webhook receiver on a loopback port: its URL."""
    app = web.Application()
    app.router.add_post("/hook", handler)
    async with serving(app, port, shutdown_timeout=0.5) as base:
        yield f"{base}/hook"


async def test_webhook_delivers_in_order_with_the_secret_header(
    bot: Bot, emu: EmulatorClient
) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []
    done = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        received.append(
            (request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json())
        )
        if len(received) == 3:
            done.set()
        return web.Response()

    async with _receiver(hook) as url:
        await bot.set_webhook(url, secret_token="s3cr3t-Token_1")
        for text in ("a", "b", "c"):
            await emu.user(42).send(text)
        await asyncio.wait_for(done.wait(), 5)
    assert [secret for secret, _ in received] == ["s3cr3t-Token_1"] * 3
    texts = [update["message"]["text"] for _, update in received]
    assert texts == ["a", "b", "c"]
    ids = [update["update_id"] for _, update in received]
    assert ids == sorted(ids)
    info = await bot.get_webhook_info()
    assert info.url == url
    assert info.pending_update_count == 0


async def test_webhook_retries_while_the_receiver_is_down_or_failing(
    bot: Bot, emu: EmulatorClient
) -> None:
    port = free_port()  # left closed: the receiver is "down"
    url = f"http://127.0.0.1:{port}/hook"
    await bot.set_webhook(url)
    await emu.user(42).send("while down")
    await asyncio.sleep(0.3)
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 1
    assert info.last_error_date is not None
    assert info.last_error_message

    calls = 0
    got = asyncio.Event()
    texts: list[str] = []

    async def flaky(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.Response(status=500)
        texts.append((await request.json())["message"]["text"])
        got.set()
        return web.Response()

    async with _receiver(flaky, port=port):
        await asyncio.wait_for(got.wait(), 10)
    assert texts == ["while down"]
    assert calls >= 2
    assert (await bot.get_webhook_info()).pending_update_count == 0
    stats = await emu.stats()
    assert stats["webhook_failures"] >= 2
    assert stats["webhook_deliveries"] == 1


async def test_set_webhook_ends_a_running_long_poll(bot: Bot, emu: EmulatorClient) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    for _ in range(100):  # the poll is running once the emulator has logged it
        if await emu.calls("getUpdates"):
            break
        await asyncio.sleep(0.05)
    assert await bot.set_webhook("http://127.0.0.1:9/never") is True
    with pytest.raises(TelegramConflictError, match="Conflict: terminated by setWebhook request"):
        await asyncio.wait_for(poll, 2)
    await bot.delete_webhook()


async def test_webhook_secret_token_empty_means_none_and_256_is_the_limit(
    bot: Bot, emu: EmulatorClient
) -> None:
    received: list[str | None] = []
    done = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        received.append(request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        done.set()
        return web.Response()

    async with _receiver(hook) as url:
        with pytest.raises(TelegramBadRequest, match="Bad Request: secret token is too long"):
            await bot.set_webhook(url, secret_token="a" * 257)
        with pytest.raises(
            TelegramBadRequest, match="Bad Request: secret token contains unallowed characters"
        ):
            await bot.set_webhook(url, secret_token="not allowed!")
        assert await bot.set_webhook(url, secret_token="a" * 256) is True
        assert await bot.set_webhook(url, secret_token="") is True
        await emu.user(42).send("hello")
        await asyncio.wait_for(done.wait(), 5)
    # An empty secret is no secret: deliveries carry no secret header.
    assert received == [None]
    await bot.delete_webhook()


async def test_webhook_drop_pending_updates_and_delete(bot: Bot, emu: EmulatorClient) -> None:
    await emu.user(42).send("old")
    await bot.set_webhook("http://127.0.0.1:9/never", drop_pending_updates=True)
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 0
    assert info.url == "http://127.0.0.1:9/never"
    await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""


async def test_dispatcher_polls_the_emulator_and_answers_a_citizen(
    bot: Bot, emu: EmulatorClient
) -> None:
    router = Router()

    @router.message(F.text == "/start")
    async def start(message: Message) -> None:
        await message.answer("<b>Welcome</b> to Example City police", parse_mode="HTML")

    @router.message(F.text)
    async def echo(message: Message) -> None:
        await message.reply(f"You said: {message.text}")

    dp = Dispatcher()
    dp.include_router(router)
    polling = asyncio.create_task(
        dp.start_polling(bot, polling_timeout=1, handle_signals=False, close_bot_session=False)
    )
    try:
        citizen = emu.user(42)
        await citizen.send("/start")
        welcome = await emu.wait_bot_message(chat_id=42, timeout=10)
        assert welcome["text"] == "Welcome to Example City police"
        assert welcome["entities"] == [{"type": "bold", "offset": 0, "length": 7}]
        asked = await citizen.send("lost passport")
        reply = await emu.wait_bot_message(chat_id=42, timeout=10)
        assert reply["text"] == "You said: lost passport"
        assert reply["reply_to_message"]["message_id"] == asked["message_id"]
    finally:
        await dp.stop_polling()
        await polling


async def test_webhook_delivers_chats_concurrently_each_chat_in_order(
    bot: Bot, emu: EmulatorClient
) -> None:
    """Up to max_connections updates in flight, but never two of one chat, nor out of order."""
    flying: set[int] = set()
    most = 0
    order: dict[int, list[str]] = {}
    done = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        nonlocal most
        message = (await request.json())["message"]
        chat = message["chat"]["id"]
        assert chat not in flying, "two updates of one chat in flight"
        flying.add(chat)
        most = max(most, len(flying))
        await asyncio.sleep(0.1)
        order.setdefault(chat, []).append(message["text"])
        flying.discard(chat)
        if sum(len(v) for v in order.values()) == 18:
            done.set()
        return web.Response()

    async with _receiver(slow) as url:
        await bot.set_webhook(url, max_connections=4)
        for n in range(3):
            for user in range(50, 56):
                await emu.user(user).send(f"{user}-{n}")
        await asyncio.wait_for(done.wait(), 10)
    assert most == 4  # max_connections, not one at a time, not more
    assert order == {user: [f"{user}-{n}" for n in range(3)] for user in range(50, 56)}
    assert (await emu.stats())["webhook_max_in_flight"] == 4


async def test_a_failing_update_holds_back_its_own_chat_only(bot: Bot, emu: EmulatorClient) -> None:
    seen: list[str] = []
    fail_first = {"a-1"}
    got_all = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        text = (await request.json())["message"]["text"]
        if text in fail_first:
            fail_first.discard(text)
            return web.Response(status=502)
        seen.append(text)
        if len(seen) == 4:
            got_all.set()
        return web.Response()

    async with _receiver(hook) as url:
        await bot.set_webhook(url)
        await emu.user(61).send("a-1")
        await emu.user(61).send("a-2")
        await emu.user(62).send("b-1")
        await emu.user(62).send("b-2")
        await asyncio.wait_for(got_all.wait(), 10)
    # Chat b went on while a-1 was retried; a-2 waited for a-1.
    assert seen.index("b-2") < seen.index("a-1") < seen.index("a-2")

"""The broadcast hot path: its request bodies, and Telegram's answers mapped like aiogram's."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)

from bot.alerts.render import RenderedAlert
from bot.alerts.transport import BroadcastTransport
from bot.emulator.core import Fault
from bot.emulator.server import EmulatorServer
from tests.support.alerts import texts_in

TEXT = '🚨 <b>Road closed</b> "Ring Road" \\ <i>Example City</i>\n道路封闭'


def test_body_is_one_json_object_per_recipient(tg: Bot) -> None:
    loud = BroadcastTransport(tg, paid_broadcast=False).prepare(RenderedAlert(TEXT, False))
    body = json.loads(BroadcastTransport.body(42, loud))
    assert body == {"chat_id": 42, "text": TEXT, "parse_mode": "HTML"}

    paid = BroadcastTransport(tg, paid_broadcast=True)
    quiet = paid.prepare(RenderedAlert(TEXT, True))
    body = json.loads(paid.body(-7, quiet, reply_to=99))
    assert body == {
        "chat_id": -7,
        "reply_parameters": {"message_id": 99, "allow_sending_without_reply": True},
        "text": TEXT,
        "parse_mode": "HTML",
        "disable_notification": True,
        "allow_paid_broadcast": True,
    }


async def test_sends_html_and_returns_the_message_id(emulator: EmulatorServer, tg: Bot) -> None:
    emulator.emulator.create_user(501, first_name="A")
    emulator.emulator.private_chat(501)
    transport = BroadcastTransport(tg, paid_broadcast=False)
    prepared = transport.prepare(RenderedAlert(TEXT, True))

    first = await transport.send(501, prepared, None)
    second = await transport.send(501, prepared, first)

    assert second == first + 1
    stored: list[dict[str, Any]] = texts_in(emulator, 501)
    assert [m["message_id"] for m in stored] == [first, second]
    assert stored[0]["text"].startswith('🚨 Road closed "Ring Road"')
    assert {e["type"] for e in stored[0]["entities"]} == {"bold", "italic"}
    assert stored[1]["reply_to_message"]["message_id"] == first


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault("sendmessage", "retry_after", retry_after=7), TelegramRetryAfter),
        (Fault("sendmessage", "server_error"), TelegramServerError),
        (Fault("sendmessage", "error", status=400), TelegramBadRequest),
        (Fault("sendmessage", "drop"), TelegramNetworkError),
    ],
)
async def test_errors_arrive_as_aiogram_exceptions(
    emulator: EmulatorServer, tg: Bot, fault: Fault, expected: type[Exception]
) -> None:
    emulator.emulator.create_user(502, first_name="B")
    emulator.emulator.private_chat(502)
    emulator.emulator.add_fault(fault)
    transport = BroadcastTransport(tg, paid_broadcast=False)

    with pytest.raises(expected) as info:
        await transport.send(502, transport.prepare(RenderedAlert("hi", False)), None)

    if isinstance(info.value, TelegramRetryAfter):
        assert info.value.retry_after == 7
    assert texts_in(emulator, 502) == []


async def test_blocked_and_unknown_chats(emulator: EmulatorServer, tg: Bot) -> None:
    emulator.emulator.create_user(503, first_name="C")
    emulator.emulator.private_chat(503)
    emulator.emulator.set_blocked(503, True)
    transport = BroadcastTransport(tg, paid_broadcast=False)
    prepared = transport.prepare(RenderedAlert("hi", False))

    with pytest.raises(TelegramForbiddenError, match="blocked"):
        await transport.send(503, prepared, None)
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await transport.send(123456789, prepared, None)

"""Flood limits: per private chat, per group, overall, paid broadcasts; and the limiter itself."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramRetryAfter
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup

from bot.emulator.client import EmulatorClient
from bot.emulator.limits import Limits, RateLimiter

PNG_1x1 = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01" + b"\x00" * 16


def _keyboard(data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=data, callback_data=data)]]
    )


class FakeClock:
    """A clock the limiter tests move by hand, so they need no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limits() -> Limits:
    """Telegram's default limits, on (overrides the conftest default of off)."""
    return Limits()


async def test_private_chat_tolerates_a_short_burst_then_429(bot: Bot, emu: EmulatorClient) -> None:
    await emu.user(42).send("hi")
    for n in range(Limits().private_burst):
        await bot.send_message(42, f"part {n}")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(42, "one too many")
    assert caught.value.retry_after >= 1
    # Another private chat is not affected by this chat's flood.
    await emu.user(43).send("hi")
    assert (await bot.send_message(43, "fine")).text == "fine"
    stats = await emu.stats()
    assert stats["too_many_requests"] == 1
    assert stats["errors"]["429"] == 1


async def test_group_allows_twenty_per_minute(bot: Bot, emu: EmulatorClient) -> None:
    group = await emu.create_group(members=[5])
    for n in range(20):
        await bot.send_message(group["id"], f"alert {n}")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(group["id"], "alert 21")
    assert 1 <= caught.value.retry_after <= 60


async def test_overall_thirty_per_second_unless_paid_broadcast(
    bot: Bot, emu: EmulatorClient
) -> None:
    for uid in range(1, 41):
        await emu.user(1000 + uid).send("subscribe")
    for uid in range(1, 31):
        await bot.send_message(1000 + uid, "Alert")
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(1031, "Alert")
    # Paid broadcasts raise the overall ceiling to 1,000 messages per second.
    for uid in range(31, 41):
        await bot.send_message(1000 + uid, "Alert", allow_paid_broadcast=True)


async def test_edits_count_against_the_chat_limit_like_sends(bot: Bot, emu: EmulatorClient) -> None:
    # Refill slowly so that a slow machine cannot earn a new token in the middle of the test.
    await emu.set_limits(private_per_second=0.05)
    await emu.user(42).send("hi")
    photo = await bot.send_photo(42, BufferedInputFile(PNG_1x1, "a.png"), caption="v0")
    text = await bot.send_message(42, "v0", reply_markup=_keyboard("a"))
    await bot.edit_message_caption(chat_id=42, message_id=photo.message_id, caption="v1")
    # The burst of three is used up by two sends and one edit: each edit method now gets 429.
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.edit_message_text("v1", chat_id=42, message_id=text.message_id)
    assert caught.value.retry_after >= 1
    with pytest.raises(TelegramRetryAfter):
        await bot.edit_message_caption(chat_id=42, message_id=photo.message_id, caption="v2")
    with pytest.raises(TelegramRetryAfter):
        await bot.edit_message_reply_markup(
            chat_id=42, message_id=text.message_id, reply_markup=_keyboard("b")
        )
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(42, "and sends wait too")
    assert (await emu.stats())["too_many_requests"] == 4


async def test_edits_in_a_group_share_its_twenty_per_minute(bot: Bot, emu: EmulatorClient) -> None:
    group = await emu.create_group(members=[5])
    progress = await bot.send_message(group["id"], "0 %")
    for n in range(1, 20):
        await bot.edit_message_text(
            f"{n * 5} %", chat_id=group["id"], message_id=progress.message_id
        )
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.edit_message_text("100 %", chat_id=group["id"], message_id=progress.message_id)
    assert 1 <= caught.value.retry_after <= 60
    # A refused edit changed nothing.
    transcript = await emu.transcript(group["id"])
    assert transcript[-1]["message"]["text"] == "95 %"


async def test_limits_can_be_switched_off(bot: Bot, emu: EmulatorClient) -> None:
    await emu.set_limits(enabled=False)
    await emu.user(42).send("hi")
    for n in range(10):
        await bot.send_message(42, f"m{n}")
    assert (await emu.stats())["too_many_requests"] == 0


def test_private_bucket_refills_at_one_per_second() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Limits(private_burst=2), clock)
    assert limiter.check("t", 1, True, False) is None
    assert limiter.check("t", 1, True, False) is None
    assert limiter.check("t", 1, True, False) == 1
    clock.now += 1.0
    assert limiter.check("t", 1, True, False) is None
    assert limiter.check("t", 1, True, False) == 1


def test_group_window_slides_after_a_minute() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Limits(group_per_minute=3), clock)
    for _ in range(3):
        assert limiter.check("t", -1, False, False) is None
        clock.now += 10
    # Sends at 0, 10 and 20 s; now is 30 s and the first leaves the window at 60 s.
    assert limiter.check("t", -1, False, False) == 30
    clock.now += 30
    assert limiter.check("t", -1, False, False) is None


def test_global_window_counts_all_chats_and_refused_sends_do_not_count() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Limits(global_per_second=3, private_burst=5), clock)
    for chat in range(3):
        assert limiter.check("t", chat, True, False) is None
    for _ in range(5):
        assert limiter.check("t", 99, True, False) == 1
    clock.now += 1.0
    assert limiter.check("t", 99, True, False) is None

"""A citizen who writes very fast: answers pause with one notice; a crisis still gets through."""

from __future__ import annotations

from typing import Any

import pytest

from bot.emulator.limits import Limits
from tests.support.e2e import Harness


@pytest.fixture
def settings_overrides() -> dict[str, dict[str, Any]]:
    return {"bot": {"flood_messages": 3, "flood_window_seconds": 60}}


@pytest.fixture
def emulator_limits() -> Limits:
    # The bot's own flood control is under test, not Telegram's per-chat limit.
    return Limits(private_per_second=50.0, private_burst=50)


async def test_flood_pauses_answers_once_but_never_a_crisis(harness: Harness) -> None:
    ann = await harness.new_citizen(801)
    for _ in range(3):
        assert "ID card" in (await ann.say("I lost my ID card, what should I do?"))["text"]
    notice = await ann.say("I lost my ID card, what should I do?")
    assert "sending messages very quickly" in notice["text"]
    await ann.send("I lost my ID card, what should I do?")
    await harness.settle()
    await ann.silence(0.3)  # still throttled: no answer and no second notice
    reply = await ann.say("I want to kill myself tonight")
    assert "A person from our team is joining you" in reply["text"]

"""The forum's minute: ordinary cases leave room for urgent ones, and their piled-up messages
reach the topic merged into one."""

from __future__ import annotations

from typing import Any

import pytest

from bot.emulator.limits import Limits
from bot.telegram import ForumLane
from tests.support.e2e import (
    FORUM_ID,
    Harness,
    bot_says,
    eventually,
    text_of,
    topic_messages,
    topic_of,
)


@pytest.fixture
def emulator_limits() -> Limits:
    # Telegram's limits, but the group's left to our own lane (a short window, see below).
    return Limits(group_per_minute=1000)


@pytest.fixture
def settings_overrides() -> dict[str, dict[str, Any]]:
    return {
        "officers": {
            "loop_seconds": 0.05,
            "wait_notice_minutes": 60,
            "per_minute": 3,
            "urgent_reserve": 1,
        }
    }


@pytest.fixture(autouse=True)
def short_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 'minute' of three seconds, so the test need not wait for Telegram's."""
    monkeypatch.setattr(ForumLane, "WINDOW", 3.0)


async def test_ordinary_messages_wait_merged_while_a_crisis_takes_the_reserve(
    harness: Harness,
) -> None:
    bob = await harness.new_citizen(3101, "Bob")
    assert "person from our team" in (await bob.say("/human"))["text"]
    tid = (await topic_of(harness, 1))["message_thread_id"]
    await bot_says(harness, FORUM_ID, "Case #1", tid)  # the minute's first ordinary message
    await bob.send("my neighbour's dog barks all night")
    await bot_says(harness, FORUM_ID, "barks all night", tid)  # and its second: full
    later = ["it started in May", "I asked him twice", "what can I do?"]
    for text in later:
        await bob.send(text)
    await harness.settle()
    # The ordinary minute is full: Bob's new messages wait...
    assert not any(t in text_of(m) for m in await topic_messages(harness, tid) for t in later)
    # ...while a crisis takes the reserve at once.
    ann = await harness.new_citizen(3102, "Ann")
    reply = await ann.say("I want to kill myself tonight")
    assert "joining you" in reply["text"]
    urgent = (await topic_of(harness, 2, within=2.0))["message_thread_id"]
    await bot_says(harness, FORUM_ID, "Urgent case #2", urgent, within=2.0)

    async def merged() -> dict[str, Any] | None:
        for message in await topic_messages(harness, tid):
            if all(t in text_of(message) for t in later):
                return message
        return None

    message = await eventually(merged, seconds=8.0)
    assert "3 messages from the citizen" in text_of(message)
    assert message["from"]["is_bot"]
    # Once, merged: no separate copies of the same messages.
    texts = [text_of(m) for m in await topic_messages(harness, tid)]
    assert sum("I asked him twice" in t for t in texts) == 1

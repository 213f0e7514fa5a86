"""Shared helpers for the handoff end-to-end tests: find case topics and what was said in them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import FORUM_ID, Harness


def text_of(message: dict[str, Any]) -> str:
    """A message's text or caption."""
    return str(message.get("text") or message.get("caption") or "")


def mentioned(message: dict[str, Any]) -> list[int]:
    """User ids a message mentions (tg://user links become text_mention entities)."""
    ids = []
    for entity in message.get("entities", []):
        if entity["type"] == "text_mention":
            ids.append(entity["user"]["id"])
    return ids


async def topic_of(harness: Harness, case_no: int, within: float = 5.0) -> dict[str, Any]:
    """The forum topic of a case, once the bot has created it."""
    topics: list[dict[str, Any]] = []
    for _ in range(int(within / 0.02)):
        topics = await harness.emu.topics(FORUM_ID)
        found = [t for t in topics if f"#{case_no} " in t["name"]]
        if found:
            return found[-1]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no topic for case #{case_no}: {topics}")


async def bot_says(
    harness: Harness,
    chat_id: int,
    pred: Callable[[dict[str, Any]], bool] | str,
    thread_id: int | None = None,
    within: float = 5.0,
) -> dict[str, Any]:
    """The next bot message in a chat (or topic) that matches, skipping others."""
    check = (lambda m: pred in text_of(m)) if isinstance(pred, str) else pred
    deadline = asyncio.get_running_loop().time() + within
    seen: list[str] = []
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise AssertionError(f"bot never said {pred!r} in {chat_id}/{thread_id}: {seen}")
        try:
            message = await harness.emu.wait_bot_message(chat_id, thread_id, timeout=left)
        except TimeoutError:
            continue
        if check(message):
            return message
        seen.append(text_of(message)[:80])


async def topic_messages(harness: Harness, thread_id: int) -> list[dict[str, Any]]:
    """Every message in a case topic (bot and people), oldest first."""
    return [
        e["message"]
        for e in await harness.emu.transcript(FORUM_ID)
        if e["message"].get("message_thread_id") == thread_id and not e["deleted"]
    ]


async def eventually(check: Callable[[], Any], within: float = 5.0) -> Any:
    """Poll an async check until it returns something truthy."""
    result = None
    for _ in range(int(within / 0.03)):
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.03)
    raise AssertionError(f"condition not met within {within}s (last: {result!r})")


async def callback_answer(harness: Harness, query: dict[str, Any]) -> dict[str, Any]:
    """The bot's answerCallbackQuery for a pressed button (the toast the person sees)."""

    async def find() -> dict[str, Any] | None:
        for event in await harness.emu.events():
            if event["type"] == "callback_answer" and event["callback_query_id"] == query["id"]:
                return event
        return None

    return dict(await eventually(find))

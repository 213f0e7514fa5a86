"""The end-to-end harness: the emulator and the real Safewell application over real HTTP.

The application is built by the same composition root as `safewell run` (`bot.app.build`) and
polls the emulator through `TelegramAPIServer.from_base`, on the real database of each backend.
Tests act as people (a citizen who says something, an officer who writes in a topic) and assert
on what those people see in their chats: the helpers below find case topics, the bot's
messages and buttons, and what was said where. The fixtures that start it all are in
tests/e2e/conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bot.app import Safewell, build, build_faq, run_polling
from bot.config import Settings, load_settings
from bot.db import repo
from bot.db.models import Role
from bot.emulator.client import EmulatorClient
from bot.emulator.server import EmulatorServer
from bot.faq.service import FaqService
from bot.triage import Triage
from tests.support import KNOWLEDGE

T = TypeVar("T")
FORUM_ID = -1001000000001
BACKUP_ID = -1001000000002
OFFICERS = {9001: "Officer Wang", 9002: "Officer Li"}
STAFF = {9201: "Comms Chen", 9202: "Comms Zhao"}
ADMIN_ID = 9100
OUTSIDER_ID = 9300  # a forum member with no role


@functools.cache
def shared_triage() -> Triage:
    """The triage classifier, loaded once per test process (it is immutable)."""
    return Triage.load(KNOWLEDGE / "triage")


@functools.cache
def shared_faq() -> FaqService:
    """The FAQ service with the sample knowledge, loaded once (tests that reload restore it)."""
    return build_faq(load_settings(env_file=None, faq={"knowledge_dir": KNOWLEDGE}))


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Settings overrides per group, merged key by key."""
    merged = {k: dict(v) for k, v in base.items()}
    for group, values in extra.items():
        merged.setdefault(group, {}).update(values)
    return merged


class CitizenActor:
    """A simulated citizen in their private chat with the bot."""

    def __init__(self, emu: EmulatorClient, user_id: int) -> None:
        self.emu = emu
        self.id = user_id
        self.user = emu.user(user_id)

    async def send(self, text: str) -> dict[str, Any]:
        """Send text; returns the citizen's own message."""
        return await self.user.send(text)

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
        """The bot's next message in this chat."""
        return await self.emu.wait_bot_message(self.id, timeout=timeout)

    async def say(self, text: str, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
        """Send text and return the bot's reply."""
        await self.send(text)
        return await self.next(timeout)

    async def press(self, message: dict[str, Any], text: str) -> dict[str, Any]:
        """Press the inline button with this text under a bot message."""
        return await self.user.press(message["message_id"], text=text)

    async def silence(self, seconds: float = 1.0) -> None:
        """Assert the bot says nothing more for a while."""
        with pytest.raises(TimeoutError):
            msg = await self.emu.wait_bot_message(self.id, timeout=seconds)
            pytest.fail(f"unexpected bot message: {msg.get('text')!r}")


async def eventually(check: Callable[[], Awaitable[T]], seconds: float = 10.0) -> T:
    """Poll `check` until it returns a truthy value (for effects with no message to wait on)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {seconds}s (last: {result!r})")
        await asyncio.sleep(0.05)


async def forum_checked(app: Safewell) -> list[str]:
    """The start-up check of the officers' forum, once it has run: what it found missing."""

    async def checked() -> bool:
        return app.forum_problems is not None

    await eventually(checked)
    assert app.forum_problems is not None
    return app.forum_problems


async def bot_message(emu: EmulatorClient, chat_id: int, message_id: int) -> dict[str, Any]:
    """The current state of one message (after edits) from the chat's transcript."""
    for entry in await emu.transcript(chat_id):
        if entry["message"]["message_id"] == message_id:
            return dict(entry["message"])
    raise AssertionError(f"message {message_id} not in chat {chat_id}")


async def pressed(
    harness: Harness, actor: CitizenActor, message: dict[str, Any], text: str
) -> dict[str, Any]:
    """Press a button under a bot message in the actor's chat, let the bot handle it, and
    return that message as it is shown now (after the bot's edit)."""
    await actor.press(message, text)
    await harness.settle()
    return await bot_message(harness.emu, actor.id, message["message_id"])


def buttons(message: dict[str, Any]) -> list[str]:
    """The texts of a message's inline buttons, row by row flattened."""
    markup = message.get("reply_markup") or {}
    return [b["text"] for row in markup.get("inline_keyboard", []) for b in row]


class Harness:
    """Starts, stops and restarts the real application against the emulator."""

    def __init__(
        self,
        emulator: EmulatorServer,
        emu: EmulatorClient,
        db_url: str,
        overrides: dict[str, dict[str, Any]],
    ) -> None:
        self.emulator = emulator
        self.emu = emu
        self.db_url = db_url
        self.overrides = overrides
        self.app: Safewell | None = None
        self._task: asyncio.Task[None] | None = None
        # Updates spooled while a test takes the database away; kept across restarts.
        self.spool_dir = Path(tempfile.mkdtemp(prefix="safewell-spool-"))

    @property
    def settings(self) -> Settings:
        base = {
            "bot": {
                "token": self.emulator.token,
                "api_base_url": self.emulator.base_url,
                "admin_ids": [ADMIN_ID],
            },
            "database": {"url": self.db_url},
            "officers": {
                "chat_id": FORUM_ID,
                "backup_chat_id": BACKUP_ID,
                # The forum's own lane follows the emulator: off when its limits are.
                "per_minute": 20 if self.emulator.emulator.config.limits.enabled else 0,
            },
            "faq": {"knowledge_dir": KNOWLEDGE},
            "intake": {"spool_dir": self.spool_dir},
        }
        return load_settings(env_file=None, **deep_merge(base, self.overrides))

    async def start(self) -> Safewell:
        """Build the app (migrating), register the staff, start polling and the workers."""
        app = await build(self.settings, faq=shared_faq(), triage=shared_triage())
        async with app.sessionmaker() as session:
            for user_id, name in OFFICERS.items():
                await repo.add_role(session, user_id, Role.OFFICER, display_name=name)
            for user_id, name in STAFF.items():
                await repo.add_role(session, user_id, Role.STAFF, display_name=name)
            await session.commit()
        self.app = app
        self._task = asyncio.create_task(run_polling(app, handle_signals=False))
        # Polling has started once the bot asked for updates.
        for _ in range(200):
            if await self.emu.calls("getUpdates"):
                break
            await asyncio.sleep(0.02)
        return app

    async def stop(self) -> None:
        """Stop polling; in-flight updates finish, then the app closes."""
        if self.app is None or self._task is None:
            return
        with contextlib.suppress(RuntimeError):  # polling may have stopped on its own
            self.app.stop()
        await self._task
        self.app, self._task = None, None

    async def restart(self) -> Safewell:
        """A new process on the same database and the same Telegram."""
        await self.stop()
        return await self.start()

    async def settle(self, seconds: float = 10.0) -> None:
        """Wait until the bot has fetched every update and finished handling them.

        For actions whose effect is an edit, a refusal or nothing at all: there is no new
        message to wait for, and a fixed sleep is either slow or flaky.
        """
        assert self.app is not None
        state = self.emulator.emulator.bots[self.emulator.token]
        quiet = 0
        deadline = asyncio.get_running_loop().time() + seconds
        while quiet < 3:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the bot did not settle within {seconds}s")
            busy = bool(state.updates) or self.app.inflight.count > 0 or self.app.intake.busy
            quiet = 0 if busy else quiet + 1
            await asyncio.sleep(0.02)

    def citizen(self, user_id: int) -> CitizenActor:
        """A citizen actor (create it first with `new_citizen` to set names and language)."""
        return CitizenActor(self.emu, user_id)

    async def new_citizen(
        self, user_id: int, first_name: str = "Ann", language_code: str | None = "en", **fields: Any
    ) -> CitizenActor:
        """Create a Telegram user and return them as a citizen actor."""
        await self.emu.create_user(
            user_id, first_name=first_name, language_code=language_code, **fields
        )
        return self.citizen(user_id)


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


async def callback_answer(harness: Harness, query: dict[str, Any]) -> dict[str, Any]:
    """The bot's answerCallbackQuery for a pressed button (the toast the person sees)."""

    async def find() -> dict[str, Any]:
        for event in await harness.emu.events():
            if event["type"] == "callback_answer" and event["callback_query_id"] == query["id"]:
                return dict(event)
        return {}  # not yet

    return await eventually(find)

"""End-to-end harness: the emulator and the real Safewell application over real HTTP.

The application is built by the same composition root as `safewell run` (`bot.app.build`) and
polls the emulator through `TelegramAPIServer.from_base`, on the real database of each backend.
Tests act as people (a citizen who says something, an officer who writes in a topic) and assert
on what those people see in their chats.

Override `settings_overrides` in a test module to change settings, and `emulator_limits` to
change the emulator's flood limits (on by default, as on Telegram).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import Safewell, build, build_faq, run_polling
from bot.config import Settings, load_settings
from bot.db import repo
from bot.db.models import Role
from bot.emulator.client import EmulatorClient
from bot.emulator.core import Emulator, EmulatorConfig
from bot.emulator.limits import Limits
from bot.emulator.server import EmulatorServer
from bot.faq.service import FaqService
from bot.triage import Triage

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
KNOWLEDGE = REPO / "knowledge"
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


@pytest.fixture
def emulator_limits() -> Limits:
    """Telegram's flood limits, on (override in a module to change them)."""
    return Limits()


@pytest.fixture
def settings_overrides() -> dict[str, dict[str, Any]]:
    """Extra settings per group, e.g. {"officers": {"repage_minutes": 0.01}}."""
    return {}


@pytest.fixture
async def emulator(emulator_limits: Limits) -> AsyncIterator[EmulatorServer]:
    """A running Bot API emulator on a free loopback port."""
    server = EmulatorServer(Emulator(EmulatorConfig(limits=emulator_limits)))
    async with server:
        yield server


@pytest.fixture
async def emu(emulator: EmulatorServer) -> AsyncIterator[EmulatorClient]:
    """The emulator's control client."""
    async with EmulatorClient(emulator.base_url) as client:
        yield client


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


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Samples:
    """Every sample of a /metrics scrape, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when the scrape has none with these labels)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


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


@pytest.fixture
async def forum(emu: EmulatorClient) -> dict[str, Any]:
    """The officers' forum supergroup (officers, the admin and one outsider are members)."""
    for user_id, name in {**OFFICERS, ADMIN_ID: "Admin Sun", OUTSIDER_ID: "Visitor"}.items():
        await emu.create_user(user_id, first_name=name, language_code="en")
    members = [*OFFICERS, ADMIN_ID, OUTSIDER_ID]
    await emu.create_group(
        title="Example City backup desk", members=members, chat_id=BACKUP_ID, is_forum=False
    )
    return await emu.create_forum(members=members, admins=[ADMIN_ID], chat_id=FORUM_ID)


@pytest.fixture
async def harness(
    emulator: EmulatorServer,
    emu: EmulatorClient,
    forum: dict[str, Any],
    db_url: str,
    settings_overrides: dict[str, dict[str, Any]],
) -> AsyncIterator[Harness]:
    """The running application; stopped after the test."""
    running = Harness(emulator, emu, db_url, settings_overrides)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()

"""At start the bot says what stops it in the officers' forum: in the log, in /healthz and to
the admins, not first when a citizen asks for a person."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.emulator.client import EmulatorClient
from bot.emulator.server import EmulatorServer
from bot.forum_check import forum_problems
from bot.web import create_web_app
from tests.support.e2e import ADMIN_ID, FORUM_ID, OFFICERS, Harness, bot_says, forum_checked
from tests.support.emulator import make_bot


async def test_each_missing_right_is_named(emulator: EmulatorServer, emu: EmulatorClient) -> None:
    bot = make_bot(emulator)
    try:
        await emu.create_forum(chat_id=-1001000000101, bot_can_manage_topics=False)
        await emu.create_forum(chat_id=-1001000000102, bot_is_admin=False)
        await emu.create_group(title="Plain", chat_id=-1001000000103, admins=[])
        await emu.create_forum(chat_id=-1001000000104)
        assert await forum_problems(bot, -1001000000101) == [
            "the bot lacks the administrator right 'Manage topics'"
        ]
        [not_admin] = await forum_problems(bot, -1001000000102)
        assert not_admin.startswith("the bot is not an administrator")
        plain = await forum_problems(bot, -1001000000103)
        assert plain[0] == "topics are off: turn on Topics in the group's settings"
        [unknown] = await forum_problems(bot, -1001000000999)
        assert unknown.startswith("the bot cannot read the chat")
        assert await forum_problems(bot, -1001000000104) == []
    finally:
        await bot.session.close()


async def test_a_good_forum_is_ok_in_healthz(harness: Harness) -> None:
    assert harness.app is not None
    app = harness.app
    assert await forum_checked(app) == []
    async with TestClient(TestServer(create_web_app(app, webhook=False))) as client:
        body = await (await client.get("/healthz")).json()
    assert body["forum"] == "ok"


class TestAForumWithoutTheRight:
    @pytest.fixture
    async def forum(self, emu: EmulatorClient) -> dict[str, Any]:
        # The admin has opened a chat with the bot before it starts; the forum lacks the right.
        await emu.create_user(ADMIN_ID, first_name="Admin Sun", language_code="en")
        await emu.user(ADMIN_ID).send("/start")
        for user_id, name in OFFICERS.items():
            await emu.create_user(user_id, first_name=name, language_code="en")
        return await emu.create_forum(
            members=[*OFFICERS, ADMIN_ID], chat_id=FORUM_ID, bot_can_manage_topics=False
        )

    async def test_the_admins_are_told_and_healthz_says_why(self, harness: Harness) -> None:
        assert harness.app is not None
        app = harness.app

        message = await bot_says(harness, ADMIN_ID, "not ready", within=10)
        assert "Manage topics" in message["text"] and str(FORUM_ID) in message["text"]
        assert app.forum_problems == ["the bot lacks the administrator right 'Manage topics'"]
        async with TestClient(TestServer(create_web_app(app, webhook=False))) as client:
            body = await (await client.get("/healthz")).json()
            assert body["status"] == "ok" and body["forum"] == app.forum_problems
            # Still alive, but not doing its job: /readyz takes it out of rotation.
            ready = await client.get("/readyz")
            assert ready.status == 503
            assert (await ready.json())["forum"] == "the bot lacks the administrator right " + (
                "'Manage topics'"
            )

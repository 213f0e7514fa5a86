"""`safewell demo`: the page, its API, and a citizen talking to the real bot through it."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.cli import build_parser
from bot.config import ConfigError
from bot.demo import FIRST_CITIZEN_ID, FORUM_ID, Demo, DemoOptions, start_demo

ANN = FIRST_CITIZEN_ID
OFFICER = 9001


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, demo: Demo, path: str, body: dict[str, Any] | None = None
) -> Any:
    """A page API call; returns the result, failing the test on an error."""
    verb = "GET" if body is None else "POST"
    async with http.request(verb, demo.url + path.lstrip("/"), json=body) as response:
        payload = await response.json()
    assert payload["ok"], payload
    return payload["result"]


async def bot_reply(
    http: aiohttp.ClientSession, demo: Demo, chat_id: int, after: int
) -> dict[str, Any]:
    """Follow the page's event stream until the bot writes in a chat, as the page does."""
    cursor = after
    for _ in range(20):
        events = await call(http, demo, f"/api/emu/events?after={cursor}&timeout=5")
        for event in events:
            cursor = event["cursor"]
            if event["type"] == "message" and event["from_bot"] and event["chat_id"] == chat_id:
                return dict(event["message"])
    raise AssertionError(f"the bot did not write in chat {chat_id}")


def tiny_png() -> bytes:
    """A valid 1×1 PNG (built here; the demo ships no binary files either)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


async def test_page_and_static_files_are_served(demo: Demo, http: aiohttp.ClientSession) -> None:
    async with http.get(demo.url) as response:
        assert response.status == 200
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        html = await response.text()
    assert "<title>Safewell demo</title>" in html and "/static/app.js" in html
    for name, kind in (("app.js", "javascript"), ("app.css", "text/css")):
        async with http.get(demo.url + "static/" + name) as response:
            assert response.status == 200
            assert kind in response.headers["Content-Type"]
    async with http.get(demo.url + "static/../demo.py") as response:
        assert response.status in {403, 404}


async def test_demo_info_names_the_sample_world(demo: Demo, http: aiohttp.ClientSession) -> None:
    info = await call(http, demo, "/api/demo")
    assert info["forum"] == {"id": FORUM_ID, "title": "Example City duty officers"}
    assert [c["id"] for c in info["citizens"]] == [ANN, ANN + 1]
    assert {p["role"] for p in info["officers"] + info["staffs"] + info["admins"]} == {
        "officer",
        "staff",
        "admin",
    }
    assert info["bot"]["username"] == "safewell_bot"
    # The forum really exists in the emulator, with the officers in it.
    state = await call(http, demo, "/api/emu/state")
    forum = next(c for c in state["chats"] if c["id"] == FORUM_ID)
    assert forum["is_forum"] is True


async def test_citizen_message_reaches_the_bot_and_the_reply_shows(
    demo: Demo, http: aiohttp.ClientSession
) -> None:
    cursor = (await call(http, demo, "/api/emu/state"))["cursor"]
    await call(
        http, demo, f"/api/emu/users/{ANN}/send", {"type": "text", "text": "I lost my ID card"}
    )
    reply = await bot_reply(http, demo, ANN, cursor)
    assert "ID card" in reply["text"]
    keyboard = reply["reply_markup"]["inline_keyboard"]
    helpful = next(b for row in keyboard for b in row if b["text"] == "👍 Helpful")
    # The transcript the page renders holds both sides of the conversation.
    transcript = await call(http, demo, f"/api/emu/chats/{ANN}/transcript")
    assert [e["from_bot"] for e in transcript] == [False, True]
    assert transcript[0]["message"]["text"] == "I lost my ID card"

    # Pressing 👍 through the page's API reaches the bot, which edits the buttons away.
    await call(
        http,
        demo,
        f"/api/emu/users/{ANN}/press",
        {"message_id": reply["message_id"], "data": helpful["callback_data"]},
    )
    for _ in range(100):
        transcript = await call(http, demo, f"/api/emu/chats/{ANN}/transcript")
        markup = transcript[1]["message"].get("reply_markup") or {}
        texts = [b["text"] for row in markup.get("inline_keyboard", []) for b in row]
        if "👍 Helpful" not in texts:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the feedback buttons stayed after 👍")


async def test_staff_chat_and_officer_in_forum(demo: Demo, http: aiohttp.ClientSession) -> None:
    cursor = (await call(http, demo, "/api/emu/state"))["cursor"]
    await call(http, demo, "/api/emu/users/9201/send", {"type": "text", "text": "/help"})
    assert "/language" in (await bot_reply(http, demo, 9201, cursor))["text"]
    sent = await call(
        http,
        demo,
        f"/api/emu/users/{OFFICER}/send",
        {"type": "text", "text": "Morning shift on duty", "chat_id": FORUM_ID},
    )
    assert sent["message"]["chat"]["id"] == FORUM_ID
    transcript = await call(http, demo, f"/api/emu/chats/{FORUM_ID}/transcript")
    assert transcript[-1]["message"]["text"] == "Morning shift on duty"
    assert await call(http, demo, f"/api/emu/chats/{FORUM_ID}/topics") == []


async def test_staff_and_admins_can_be_written_to_first(demo: Demo) -> None:
    """Two-person approval sends the request to a colleague who has not written yet: in the
    demo every staff member and admin has started the bot."""
    for user_id in (9201, 9100):
        sent = await demo.app.bot.send_message(user_id, "Approval needed (demo check)")
        assert sent.chat.id == user_id


async def test_add_citizen(demo: Demo, http: aiohttp.ClientSession) -> None:
    added = await call(http, demo, "/api/citizens", {"name": "Bo", "language_code": "zh-hans"})
    assert added == {"id": ANN + 2, "name": "Bo", "role": "citizen", "language_code": "zh-hans"}
    info = await call(http, demo, "/api/demo")
    assert info["citizens"][-1]["id"] == ANN + 2
    cursor = (await call(http, demo, "/api/emu/state"))["cursor"]
    await call(http, demo, f"/api/emu/users/{ANN + 2}/send", {"type": "text", "text": "/start"})
    assert "Bo" in (await bot_reply(http, demo, ANN + 2, cursor))["text"]
    for body in ({"name": ""}, {"name": "X", "language_code": "<script>"}):
        async with http.post(demo.url + "api/citizens", json=body) as response:
            assert response.status == 400


async def test_photo_round_trip(demo: Demo, http: aiohttp.ClientSession) -> None:
    import base64

    png = tiny_png()
    entry = await call(
        http,
        demo,
        f"/api/emu/users/{ANN}/send",
        {"type": "photo", "data_base64": base64.b64encode(png).decode()},
    )
    file_id = entry["message"]["photo"][-1]["file_id"]
    async with http.get(demo.url + f"api/files/{file_id}") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/png"
        assert await response.read() == png
    async with http.get(demo.url + "api/files/nope") as response:
        assert response.status == 404


async def test_other_sites_cannot_drive_the_demo(demo: Demo, http: aiohttp.ClientSession) -> None:
    # DNS rebinding: a foreign name resolving to 127.0.0.1.
    async with http.get(demo.url + "api/demo", headers={"Host": "evil.example"}) as response:
        assert response.status == 403
    # A cross-site form post cannot send JSON without a CORS preflight.
    async with http.post(
        demo.url + f"api/emu/users/{ANN}/send", data={"type": "text", "text": "hi"}
    ) as response:
        assert response.status == 415
    # Only observing and acting as a person pass the proxy; resets and faults do not.
    for path in ("reset", "faults", "limits"):
        async with http.post(demo.url + f"api/emu/{path}", json={}) as response:
            assert response.status == 404
    assert await call(http, demo, f"/api/emu/chats/{ANN}/transcript") == []


async def test_default_database_is_temporary_and_removed(tmp_path: Path) -> None:
    running = await start_demo(DemoOptions(port=0, emulator_port=0))
    assert running.tempdir is not None
    folder = Path(running.tempdir.name)
    assert running.settings.database.url.endswith(str(folder / "demo.sqlite3"))
    assert running.settings.officers.chat_id == FORUM_ID
    assert running.settings.webhook.url is None and running.settings.redis.url is None
    await running.stop()
    assert not await asyncio.to_thread(folder.exists)


async def test_busy_port_is_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"--port: cannot listen on 127.0.0.1:{port}"):
            await start_demo(DemoOptions(port=port))
    # Said before anything starts: no bot was built, nothing was logged on the way out.
    assert not [r for r in caplog.records if r.levelno >= logging.INFO], caplog.text


def test_cli_has_the_demo_command() -> None:
    args = build_parser().parse_args(["demo", "--port", "0", "--no-limits"])
    assert args.command == "demo" and args.port == 0 and args.no_limits
    assert args.host == "127.0.0.1" and args.database is None

"""CAP 1.2 through the CLI and the HTTP API, on the same approval and delivery path."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.alerts.cap import parse_cap
from bot.db.models import Alert
from bot.web import create_web_app
from tests.support import KNOWLEDGE, REPO
from tests.support.alerts import CAP_SAMPLES, cap_sample
from tests.support.e2e import STAFF, Harness, bot_message, buttons, callback_answer
from tests.support.web import serving

DATA = CAP_SAMPLES
TOKEN = "cap-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/cap+xml"}
REVIEWER = list(STAFF)[1]


@pytest.fixture
def settings_overrides() -> dict[str, dict[str, Any]]:
    return {"alerts": {"api_token": TOKEN}}


def cli(harness: Harness, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": harness.db_url,
        "FAQ_KNOWLEDGE_DIR": str(KNOWLEDGE),
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", "--env-file", "/dev/null", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )


@contextlib.asynccontextmanager
async def cap_api(harness: Harness) -> AsyncIterator[str]:
    """The application's web routes on a free loopback port: the CAP API's URL."""
    assert harness.app is not None
    async with serving(create_web_app(harness.app, webhook=False)) as base:
        yield f"{base}/api/cap"


async def approve_pending(harness: Harness) -> None:
    reviewer = await harness.new_citizen(REVIEWER, STAFF[REVIEWER])
    await reviewer.say("/pending")
    preview = await reviewer.next()
    assert "✅ Approve and send" in buttons(preview)
    await reviewer.press(preview, "✅ Approve and send")


async def test_cli_import_and_export(harness: Harness, tmp_path: Path) -> None:
    ann = await harness.new_citizen(801)
    await ann.say("/start sub_missing-persons_riverside")
    source = tmp_path / "amber.xml"
    source.write_bytes(cap_sample("amber_alert.xml"))
    done = await asyncio.to_thread(cli, harness, "alert", "import", str(source))
    assert done.returncode == 0, done.stderr
    assert "pending_approval" in done.stdout
    await ann.silence(1.2)  # Severe: nothing before a second person approves
    await approve_pending(harness)
    got = await ann.next(timeout=10)
    assert "AMBER" in got["text"] or "abduct" in got["text"].lower()

    bad = tmp_path / "bad.xml"
    bad.write_bytes((DATA / "invalid" / "external_entity.xml").read_bytes())
    refused = await asyncio.to_thread(cli, harness, "alert", "import", str(bad))
    assert refused.returncode == 1 and "invalid CAP" in refused.stderr

    assert harness.app is not None
    async with harness.app.sessionmaker() as session:
        alert_id = await session.scalar(select(Alert.id))
    out = tmp_path / "out.xml"
    exported = await asyncio.to_thread(
        cli, harness, "alert", "export", str(alert_id), "-o", str(out)
    )
    assert exported.returncode == 0, exported.stderr
    cap = parse_cap(out.read_bytes())
    assert cap.identifier == "EXAMPLECITY-PSB-2026-11-21-0001" and cap.msg_type == "Alert"


async def test_http_api_with_bearer_token(harness: Harness) -> None:
    ann = await harness.new_citizen(802)
    await ann.say("/start sub_missing-persons")
    assert harness.app is not None
    async with cap_api(harness) as url, aiohttp.ClientSession() as http:
        async with http.post(url, data=cap_sample("amber_alert.xml")) as resp:
            assert resp.status == 401
        wrong = {"Authorization": "Bearer nope"}
        async with http.post(url, data=cap_sample("amber_alert.xml"), headers=wrong) as resp:
            assert resp.status == 401
        bad = (DATA / "invalid" / "billion_laughs.xml").read_bytes()
        async with http.post(url, data=bad, headers=AUTH) as resp:
            assert resp.status == 400
            assert "invalid CAP" in (await resp.json())["error"]
        async with http.post(url, data=cap_sample("amber_alert.xml"), headers=AUTH) as resp:
            body = await resp.json()
            assert resp.status == 201, body
            assert body["status"] == "pending_approval"
        async with http.post(url, data=cap_sample("amber_alert.xml"), headers=AUTH) as resp:
            assert resp.status == 422  # the same identifier twice
        await approve_pending(harness)
        original = await ann.next(timeout=10)
        async with http.post(url, data=cap_sample("amber_cancel.xml"), headers=AUTH) as resp:
            assert resp.status == 201
        cancel = await ann.next(timeout=10)
        assert "CANCELLED" in cancel["text"]
        assert cancel["reply_to_message"]["message_id"] == original["message_id"]


async def test_cap_cancel_and_update_of_an_alert_waiting_for_approval(harness: Harness) -> None:
    ann = await harness.new_citizen(803)
    await ann.say("/start sub_missing-persons")
    assert harness.app is not None
    async with cap_api(harness) as url, aiohttp.ClientSession() as http:
        reviewer = await harness.new_citizen(REVIEWER, STAFF[REVIEWER])
        async with http.post(url, data=cap_sample("amber_alert.xml"), headers=AUTH) as resp:
            first = await resp.json()
            assert first["status"] == "pending_approval"
        await reviewer.say("/pending")
        old_preview = await reviewer.next()
        assert "AMBER Alert: 7-year-old" in old_preview["text"]

        # An update before anyone approved: it takes the alert's place, to be approved anew.
        async with http.post(url, data=cap_sample("amber_update.xml"), headers=AUTH) as resp:
            update = await resp.json()
            assert resp.status == 201, update
        assert update["replaces"] == first["alert_id"]
        assert update["status"] == "pending_approval"
        query = await reviewer.press(old_preview, "✅ Approve and send")
        answer = await callback_answer(harness, query)
        assert (
            f"replaced by an update before it was sent: alert #{update['alert_id']}"
            in (answer["text"])
        )
        await harness.settle()
        assert buttons(await bot_message(harness.emu, REVIEWER, old_preview["message_id"])) == []
        await reviewer.say("/pending")
        new_preview = await reviewer.next()
        assert "Harbour Road" in new_preview["text"]

        # Then a cancellation: the alert is withdrawn and can no longer be approved.
        async with http.post(url, data=cap_sample("amber_cancel.xml"), headers=AUTH) as resp:
            cancel = await resp.json()
            assert resp.status == 201, cancel
        assert cancel["withdrawn"] == update["alert_id"]
        query = await reviewer.press(new_preview, "✅ Approve and send")
        answer = await callback_answer(harness, query)
        assert "withdrawn before it was sent" in answer["text"]
        assert "No alerts wait" in (await reviewer.say("/pending"))["text"]
    await ann.silence(1.5)  # nothing of it ever reached the citizen
    async with harness.app.sessionmaker() as session:
        statuses = {a.id: a.status for a in (await session.scalars(select(Alert))).all()}
    assert set(statuses.values()) == {"cancelled"}

"""What an operations team sees: /metrics counts what citizens did and what Telegram answered,
/readyz names each piece that is missing, and the dashboard and alert rules name only metrics
that exist."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from bot.db.models import Direction, Message, RelayState, utcnow
from bot.db.session import create_engine
from bot.emulator.client import EmulatorClient
from bot.logs import JsonFormatter
from bot.web import create_web_app
from tests.support import REPO
from tests.support.e2e import Harness, forum_checked
from tests.support.metrics import Samples, metric, parse_metrics


@pytest.fixture
async def client(harness: Harness) -> AsyncIterator[TestClient[Any, Any]]:
    assert harness.app is not None
    async with TestClient(TestServer(create_web_app(harness.app, webhook=False))) as web:
        yield web


async def scrape(client: TestClient[Any, Any]) -> Samples:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    return parse_metrics(await resp.text())


async def test_a_question_and_a_crisis_are_counted(
    harness: Harness, client: TestClient[Any, Any]
) -> None:
    before = await scrape(client)
    ann = await harness.new_citizen(61001)
    answer = await ann.say("How do I renew my passport?")
    assert "passport" in answer["text"].lower()
    await harness.settle()
    after = await scrape(client)

    def grew(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew("safewell_updates_total", type="message", outcome="handled") == 1
    assert grew("safewell_update_seconds_count", type="message") == 1
    assert grew("safewell_faq_total", outcome="answer") == 1
    assert grew("safewell_triage_total", level="normal") == 1
    assert grew("safewell_telegram_requests_total", method="SendMessage", result="ok") >= 1
    assert grew("safewell_rate_limiter_wait_seconds_count", line="urgent") >= 1

    bo = await harness.new_citizen(61002)
    await bo.send("I want to kill myself tonight")
    await bo.next()
    await harness.settle()
    crisis = await scrape(client)
    assert metric(crisis, "safewell_triage_total", level="crisis") >= 1
    assert metric(crisis, "safewell_open_cases", priority="urgent", status="open") == 1
    assert metric(crisis, "safewell_oldest_unclaimed_urgent_case_seconds") >= 0
    assert metric(crisis, "safewell_rate_limiter_wait_seconds_count", line="lifeline") >= 1


async def test_telegram_errors_are_counted_by_code(
    harness: Harness, emu: EmulatorClient, client: TestClient[Any, Any]
) -> None:
    ann = await harness.new_citizen(61003)
    before = await scrape(client)
    await emu.add_fault("sendMessage", "server_error", status=502, chat_id=ann.id)
    await emu.add_fault("sendMessage", "retry_after", retry_after=1, chat_id=ann.id)
    await ann.say("How do I renew my passport?", timeout=20)
    after = await scrape(client)
    for code in ("5xx", "429"):
        labels = {"method": "SendMessage", "result": code}
        assert (
            metric(after, "safewell_telegram_requests_total", **labels)
            - metric(before, "safewell_telegram_requests_total", **labels)
            == 1
        ), code


async def _ready(client: TestClient[Any, Any]) -> tuple[int, dict[str, str]]:
    resp = await client.get("/readyz")
    return resp.status, await resp.json()


async def test_ready_when_every_piece_works(harness: Harness, client: TestClient[Any, Any]) -> None:
    assert harness.app is not None
    app = harness.app
    assert await forum_checked(app) == []
    status, body = await _ready(client)
    assert (status, body) == (
        200,
        {"status": "ready", "database": "ok", "forum": "ok", "outbox": "ok", "loops": "ok"},
    )


@pytest.mark.parametrize("settings_overrides", [{"officers": {"outbox_stuck_seconds": 300}}])
async def test_not_ready_names_each_missing_piece(
    harness: Harness, client: TestClient[Any, Any]
) -> None:
    assert harness.app is not None
    app = harness.app
    assert await forum_checked(app) == []

    # The forum without the right to manage topics.
    app.forum_problems = ["the bot lacks the administrator right 'Manage topics'"]
    status, body = await _ready(client)
    assert status == 503 and body["forum"].startswith("the bot lacks")
    app.forum_problems = []

    # Redis configured but away; then answering.
    app.redis = Redis.from_url("redis://127.0.0.1:1/0")
    try:
        status, body = await _ready(client)
        assert status == 503 and body["redis"].startswith("down")
    finally:
        await app.redis.aclose()
    app.redis = None

    # An officer's message that has waited to reach the citizen: four minutes is within
    # OFFICERS_OUTBOX_STUCK_SECONDS (300 here), ten is not.
    ann = await harness.new_citizen(61004)
    await ann.say("hello")
    for minutes, stuck_expected in ((4, False), (10, True)):
        async with app.sessionmaker() as session:
            waiting = Message(
                citizen_id=ann.id,
                direction=Direction.OFFICER,
                content_type="text",
                text="We are on our way.",
                relay_state=RelayState.PENDING,
                created_at=utcnow() - timedelta(minutes=minutes),
            )
            session.add(waiting)
            await session.commit()
        status, body = await _ready(client)
        if stuck_expected:
            assert status == 503 and body["outbox"].startswith("stuck for 6")
        else:
            assert (status, body["outbox"]) == (200, "ok")
        async with app.sessionmaker() as session:
            await session.delete(await session.get(Message, waiting.id))
            await session.commit()
    assert (await _ready(client))[0] == 200

    # A background loop that died.
    async def broken() -> None:
        raise RuntimeError("lost its way")

    dead = asyncio.create_task(broken(), name="relay-loop")
    await asyncio.gather(dead, return_exceptions=True)
    app.background.append(dead)
    try:
        status, body = await _ready(client)
        assert status == 503 and body["loops"] == "stopped: relay-loop"
    finally:
        app.background.remove(dead)

    # The database away: not ready, and the metrics still answer with this process's counters.
    healthy = app.engine
    app.engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        status, body = await _ready(client)
        assert status == 503 and body["database"] == "down"
        text = await (await client.get("/metrics")).text()
        assert "safewell_metrics_database_errors_total 1.0" in text or re.search(
            r"safewell_metrics_database_errors_total [1-9]", text
        )
    finally:
        await app.engine.dispose()
        app.engine = healthy
    assert (await _ready(client))[0] == 200


async def test_dashboard_and_alert_rules_name_real_metrics(
    harness: Harness, client: TestClient[Any, Any]
) -> None:
    text = await (await client.get("/metrics")).text()
    known = {family.name for family in text_string_to_metric_families(text)}
    known |= {f"{name}_total" for name in known}
    known |= {f"{name}_{part}" for name in known for part in ("bucket", "count", "sum")}
    dashboard = json.loads((REPO / "deploy" / "grafana" / "safewell.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yml").read_text())
    exprs += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(exprs) >= 8
    named = {m for expr in exprs for m in re.findall(r"\bsafewell_[a-z_]+", expr)}
    assert named and named <= known, named - known
    for panel in dashboard["panels"]:
        assert panel.get("targets"), panel["title"]


async def test_one_log_line_per_update_with_ids_and_no_text(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    ann = await harness.new_citizen(61005)
    caplog.set_level(logging.INFO, logger="bot.intake.inbox")
    await ann.say("How do I renew my passport?")
    await harness.settle()
    [record] = [r for r in caplog.records if getattr(r, "citizen_id", None) == ann.id]
    assert record.update_type == "message" and record.outcome == "handled"  # type: ignore[attr-defined]
    line = json.loads(JsonFormatter().format(record))
    assert line["citizen_id"] == ann.id and line["outcome"] == "handled"
    assert line["update_id"] == record.update_id  # type: ignore[attr-defined]
    assert line["latency_ms"] >= 0 and line["level"] == "INFO"
    assert "passport" not in line["message"]  # the citizen's words are not logged at INFO

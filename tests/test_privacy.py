"""/forget and /privacy on both databases: every kind of row of two citizens, one forgotten.

What goes: the profile, subscriptions, alert delivery rows, FAQ questions, messages outside
cases, parked updates. What stays: the cases (official records) without the forgotten
citizen's own texts, officers' replies and notes, and everything of the other citizen.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import RetentionSettings
from bot.db import repo
from bot.db.models import (
    Alert,
    AlertDelivery,
    AuditLog,
    Base,
    Case,
    CaseStatus,
    Citizen,
    DeliveryState,
    Direction,
    FaqQuery,
    InboxUpdate,
    Message,
    MessagePair,
    RelayState,
    Subscription,
    utcnow,
)
from bot.i18n import Locales
from bot.privacy import ForgetOutcome, forget_citizen, privacy_notice
from tests.support import KNOWLEDGE

Maker = async_sessionmaker[AsyncSession]
ANN, BOB = 7_000_000_101, 7_000_000_202  # Ann forgets; Bob does not


async def _fill(s: AsyncSession, citizen_id: int, alert_id: int, n: int) -> None:
    """One of every kind of row the bot stores about a citizen, with a closed case."""
    await repo.upsert_citizen(
        s,
        citizen_id,
        first_name=f"First{n}",
        last_name=f"Last{n}",
        username=f"user{n}",
        telegram_language="en",
    )
    citizen = await s.get(Citizen, citizen_id)
    assert citizen is not None
    citizen.language = "zh"
    s.add_all(
        [
            Subscription(citizen_id=citizen_id, category="scam-warnings", district="old-town"),
            Subscription(citizen_id=citizen_id, category="traffic", district="*"),
            AlertDelivery(alert_id=alert_id, citizen_id=citizen_id, state=DeliveryState.SENT),
            FaqQuery(citizen_id=citizen_id, text=f"lost id {n}", language="en", outcome="answer"),
            FaqQuery(citizen_id=citizen_id, text=f"swallow {n}", language="en", outcome="none"),
            Message(citizen_id=citizen_id, direction=Direction.CITIZEN, text=f"hello outside {n}"),
            InboxUpdate(update_id=1000 + n, chat_id=citizen_id, payload="{}", parked=True),
            InboxUpdate(update_id=2000 + n, chat_id=citizen_id, payload="{}"),  # in flight
        ]
    )
    case = Case(
        citizen_id=citizen_id,
        priority="normal",
        status=CaseStatus.CLOSED,
        reason="human",
        closed_at=utcnow(),
        close_note="helped",
    )
    s.add(case)
    await s.flush()
    s.add_all(
        [
            Message(
                citizen_id=citizen_id,
                case_id=case.id,
                direction=Direction.CITIZEN,
                text=f"my bike was stolen {n}",
                relay_state=RelayState.DONE,
            ),
            Message(
                citizen_id=citizen_id,
                case_id=case.id,
                direction=Direction.CITIZEN,
                content_type="photo",
                relay_state=RelayState.DONE,
            ),
            Message(
                citizen_id=citizen_id,
                case_id=case.id,
                direction=Direction.OFFICER,
                text=f"officer reply {n}",
                staff_user_id=9001,
                relay_state=RelayState.DONE,
            ),
            Message(
                citizen_id=citizen_id,
                case_id=case.id,
                direction=Direction.NOTE,
                text=f"note {n}",
                staff_user_id=9001,
            ),
            MessagePair(
                case_id=case.id,
                citizen_chat_id=citizen_id,
                citizen_message_id=10 + n,
                topic_chat_id=-100123,
                topic_message_id=20 + n,
                direction=Direction.CITIZEN,
            ),
        ]
    )


async def _alert(s: AsyncSession) -> int:
    alert = Alert(
        identifier="test-alert-1", category="scam-warnings", severity="Minor", status="sent"
    )
    s.add(alert)
    await s.flush()
    return alert.id


def _plain(row: Base) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}


async def _everything_of(s: AsyncSession, citizen_id: int) -> dict[str, list[dict[str, Any]]]:
    """Every row that belongs to a citizen, table by table, as plain values."""
    case_ids = select(Case.id).where(Case.citizen_id == citizen_id)
    queries = {
        "citizen": select(Citizen).where(Citizen.id == citizen_id),
        "subscriptions": select(Subscription).where(Subscription.citizen_id == citizen_id),
        "deliveries": select(AlertDelivery).where(AlertDelivery.citizen_id == citizen_id),
        "faq": select(FaqQuery).where(FaqQuery.citizen_id == citizen_id),
        "messages": select(Message).where(Message.citizen_id == citizen_id),
        "inbox": select(InboxUpdate).where(InboxUpdate.chat_id == citizen_id),
        "cases": select(Case).where(Case.citizen_id == citizen_id),
        "pairs": select(MessagePair).where(MessagePair.case_id.in_(case_ids)),
    }
    found = {}
    for name, stmt in queries.items():
        rows = (await s.scalars(stmt.execution_options(populate_existing=True))).all()
        found[name] = sorted((_plain(r) for r in rows), key=repr)
    return found


async def test_forget_removes_everything_but_the_case_records(sessionmaker: Maker) -> None:
    async with sessionmaker() as s:
        alert_id = await _alert(s)
        await _fill(s, ANN, alert_id, 1)
        await _fill(s, BOB, alert_id, 2)
        await s.commit()
    async with sessionmaker() as s:
        ann_before = await _everything_of(s, ANN)
        bob_before = await _everything_of(s, BOB)
        audits_before = await s.scalar(select(func.count()).select_from(AuditLog))

    async with sessionmaker() as s:
        assert await forget_citizen(s, ANN) == ForgetOutcome.DONE_CASES_KEPT
        await s.commit()

    async with sessionmaker() as s:
        ann = await _everything_of(s, ANN)
        assert await _everything_of(s, BOB) == bob_before  # the other citizen: untouched
        # Ann's profile is blank; the row stays only because her case points at it.
        [profile] = ann["citizen"]
        names = (profile["first_name"], profile["last_name"], profile["username"])
        assert names == ("", None, None)
        assert profile["telegram_language"] is None and profile["language"] is None
        assert profile["last_seen_at"] == profile["created_at"]
        for kind in ("subscriptions", "deliveries", "faq"):
            assert ann[kind] == [], kind
        assert [u["update_id"] for u in ann["inbox"]] == [2001]  # the in-flight one stays
        # The case record stays, with officers' words; Ann's own texts are gone.
        assert ann["cases"] == ann_before["cases"]
        assert ann["pairs"] == ann_before["pairs"]
        assert all(m["case_id"] is not None for m in ann["messages"])
        texts = {(m["direction"], m["content_type"], m["text"]) for m in ann["messages"]}
        assert texts == {
            ("citizen", "text", None),
            ("citizen", "photo", None),
            ("officer", "text", "officer reply 1"),
            ("note", "text", "note 1"),
        }
        # The alert itself stays (official), and so does Bob's delivery of it.
        assert await s.get(Alert, alert_id) is not None
        audits = (await s.scalars(select(AuditLog).order_by(AuditLog.id))).all()
        assert len(audits) == (audits_before or 0) + 1
        entry = audits[-1]
        assert (entry.action, entry.actor_id, entry.target_type, entry.target_id) == (
            "citizen.forget",
            ANN,
            "citizen",
            str(ANN),
        )
        assert entry.details == {}  # that it happened, not what was deleted


async def test_a_citizen_without_cases_is_deleted_altogether(sessionmaker: Maker) -> None:
    async with sessionmaker() as s:
        alert_id = await _alert(s)
        await _fill(s, BOB, alert_id, 2)
        await repo.upsert_citizen(
            s, ANN, first_name="Ann", last_name=None, username="ann", telegram_language="en"
        )
        s.add_all(
            [
                Subscription(citizen_id=ANN, category="traffic", district="*"),
                AlertDelivery(alert_id=alert_id, citizen_id=ANN, state=DeliveryState.PENDING),
                FaqQuery(citizen_id=ANN, text="lost id", language="en", outcome="answer"),
                Message(citizen_id=ANN, direction=Direction.CITIZEN, text="hello"),
            ]
        )
        await s.commit()
    async with sessionmaker() as s:
        bob_before = await _everything_of(s, BOB)
    async with sessionmaker() as s:
        assert await forget_citizen(s, ANN) == ForgetOutcome.DONE
        await s.commit()
    async with sessionmaker() as s:
        assert all(rows == [] for rows in (await _everything_of(s, ANN)).values())
        assert await _everything_of(s, BOB) == bob_before
        actions = (await s.scalars(select(AuditLog.action))).all()
        assert actions.count("citizen.forget") == 1
        assert await forget_citizen(s, ANN) == ForgetOutcome.UNKNOWN


@pytest.mark.parametrize("busy", ["open_case", "pending_relay"])
async def test_nothing_is_deleted_while_officers_may_still_need_it(
    sessionmaker: Maker, busy: str
) -> None:
    async with sessionmaker() as s:
        alert_id = await _alert(s)
        await _fill(s, ANN, alert_id, 1)
        case = await s.scalar(select(Case).where(Case.citizen_id == ANN))
        assert case is not None
        if busy == "open_case":
            case.status, case.closed_at = CaseStatus.CLAIMED, None
        else:  # closed, but a message of the citizen still waits to reach the topic
            s.add(
                Message(
                    citizen_id=ANN,
                    case_id=case.id,
                    direction=Direction.CITIZEN,
                    text="one more thing",
                    relay_state=RelayState.PENDING,
                )
            )
        await s.commit()
    async with sessionmaker() as s:
        before = await _everything_of(s, ANN)
    async with sessionmaker() as s:
        assert await forget_citizen(s, ANN) == ForgetOutcome.OPEN_CASE
        await s.commit()
    async with sessionmaker() as s:
        assert await _everything_of(s, ANN) == before
        assert (await s.scalars(select(AuditLog.action))).all().count("citizen.forget") == 0


def test_privacy_notice_follows_the_settings() -> None:
    locales = Locales.load(KNOWLEDGE / "locales", "en")
    default = privacy_notice(locales, "en", RetentionSettings(_env_file=None))  # type: ignore[call-arg]
    assert "kept for 30 days" in default  # messages outside cases
    assert "kept for 90 days" in default  # FAQ questions
    assert "kept for 30 days after the alert ends" in default
    assert "kept for 3 days" in default
    assert "case records" in default and "/forget" in default
    changed = RetentionSettings(
        _env_file=None,  # type: ignore[call-arg]
        messages_days=1,
        faq_queries_days=0,
        processed_updates_days=0,
        alert_deliveries_days=7,
    )
    text = privacy_notice(locales, "en", changed)
    assert "kept for 1 day" in text and "kept for 30 days" not in text
    assert "kept for 7 days after the alert ends" in text
    assert "kept until you send /forget" in text and "kept with no time limit" in text
    zh = privacy_notice(locales, "zh", changed)
    assert "保存 1 天" in zh and "预警结束后保存 7 天" in zh and "长期保存" in zh
    assert "案件记录" in zh

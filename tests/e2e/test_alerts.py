"""Communications staff composing, approving, updating and cancelling alerts through Telegram."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.db.models import Alert, AuditLog, Subscription
from bot.emulator.limits import Limits
from tests.support.e2e import (
    ADMIN_ID,
    STAFF,
    CitizenActor,
    Harness,
    bot_message,
    buttons,
    callback_answer,
    pressed,
)

AUTHOR, REVIEWER = list(STAFF)


@pytest.fixture
def emulator_limits() -> Limits:
    """Telegram's global limit, but a fast per-chat one: a wizard is many messages in one chat,
    and waiting one second for each is not what these tests are about."""
    return Limits(private_per_second=50.0, private_burst=50)


async def bot_messages(harness: Harness, chat_id: int) -> list[dict[str, Any]]:
    return [
        e["message"]
        for e in await harness.emu.transcript(chat_id)
        if e["message"].get("from", {}).get("is_bot")
    ]


async def staff(harness: Harness, user_id: int) -> CitizenActor:
    """A staff member who has started the bot (so the bot may write to them)."""
    actor = await harness.new_citizen(user_id, STAFF[user_id])
    await actor.say("/start")
    return actor


async def subscribers(harness: Harness, *ids: int, link: str = "sub_traffic") -> None:
    for uid in ids:
        await (await harness.new_citizen(uid)).say(f"/start {link}")


async def compose(
    harness: Harness,
    author: CitizenActor,
    severity: str = "Moderate",
    headline: str = "Bridge closed",
) -> dict[str, Any]:
    """Walk the wizard to the summary with Send/Cancel; returns that message."""
    msg = await author.say("/alert")
    assert "New alert" in msg["text"]
    msg = await pressed(harness, author, msg, "Traffic")
    msg = await pressed(harness, author, msg, "All districts")
    msg = await pressed(harness, author, msg, "Done ✔")
    assert "Severity" in msg["text"]
    msg = await pressed(harness, author, msg, severity)
    await author.press(msg, "Immediate")
    assert "Headline in <b>English" not in (ask := await author.next())["text"]
    assert "Headline in English" in ask["text"]
    assert "Body text" in (await author.say(headline))["text"]
    assert "What should people do" in (await author.say("Works until 18:00."))["text"]
    assert "中文" in (await author.say("Use the tunnel."))["text"]
    assert "Body text in 中文" in (await author.say("大桥封闭"))["text"]
    assert "What should people do" in (await author.say("施工至18点。"))["text"]
    expiry = await author.say("/skip")
    assert "expire" in expiry["text"]
    await author.press(expiry, "6 h")
    schedule = await author.next()
    await author.press(schedule, "Send now")
    return await _summary(author)


async def _summary(author: CitizenActor) -> dict[str, Any]:
    for _ in range(4):
        msg = await author.next()
        if "Send" in " ".join(buttons(msg)):
            return msg
    raise AssertionError("no summary with Send/Cancel")


async def test_wizard_preview_is_exact_and_cancel_sends_nothing(harness: Harness) -> None:
    await subscribers(harness, 701, 702)
    author = await staff(harness, AUTHOR)
    summary = await compose(harness, author)
    previews = (await bot_messages(harness, AUTHOR))[-3:-1]
    assert "Bridge closed" in previews[0]["text"] and "Use the tunnel" in previews[0]["text"]
    assert "大桥封闭" in previews[1]["text"]
    assert "Recipients now: 2" in summary["text"]
    assert buttons(summary) == ["✅ Send", "✖ Cancel"]
    await author.press(summary, "✖ Cancel")
    assert "Nothing was sent" in (await author.next())["text"]
    await asyncio.sleep(1.5)
    assert await bot_messages(harness, 701) == [(await bot_messages(harness, 701))[0]]


async def test_send_update_and_cancel_reach_the_same_people(harness: Harness) -> None:
    await subscribers(harness, 711, 712)
    await subscribers(harness, 713, link="sub_scam-warnings")
    author = await staff(harness, AUTHOR)
    summary = await compose(harness, author, severity="Minor")
    await author.press(summary, "✅ Send")
    status = await author.next()
    assert "queued" in status["text"]
    ann = harness.citizen(711)
    alert = await ann.next(timeout=10)
    assert "Bridge closed" in alert["text"] and "MINOR" in alert["text"]
    # Times in the bureau's zone (BOT_TIMEZONE, Asia/Shanghai by default), not UTC.
    assert re.search(r"Issued: \d{4}-\d\d-\d\d \d\d:\d\d \(UTC\+08:00\)", alert["text"])
    assert "Bridge closed" in (await harness.citizen(712).next(timeout=10))["text"]
    assert len(await bot_messages(harness, 713)) == 1  # only the deep-link confirmation
    # The progress message becomes the final report with Update / Cancel buttons.
    for _ in range(50):
        report = await bot_message(harness.emu, AUTHOR, status["message_id"])
        if "finished" in report["text"]:
            break
        await asyncio.sleep(0.2)
    assert "Delivered: 2 / 2" in report["text"]
    assert buttons(report) == ["🔄 Update", "❌ Cancel alert"]
    # /alerts shows it to anyone.
    listing = await (await harness.new_citizen(714)).say("/alerts")
    assert "Active alerts" in listing["text"]
    assert "Bridge closed" in (await harness.citizen(714).next())["text"]

    await author.press(report, "🔄 Update")
    assert "update text" in (await author.next())["text"]
    assert "中文" in (await author.say("Reopened one lane."))["text"]
    await author.say("/skip")
    summary = await _summary(author)
    assert "Recipients now: 2" in summary["text"]
    await author.press(summary, "✅ Send")
    queued = await author.next()
    original_id = report["text"].split("#")[1].split()[0]
    assert f"of alert #{original_id} is queued" in queued["text"]
    assert queued["text"].startswith("Update #")
    update = await ann.next(timeout=10)
    assert "UPDATE" in update["text"] and "Reopened one lane" in update["text"]
    assert update["reply_to_message"]["message_id"] == alert["message_id"]

    confirm = await author.say(f"/cancel_alert {original_id}")
    assert "CANCELLED notice" in confirm["text"] and "2 recipients" in confirm["text"]
    await author.press(confirm, "Yes, cancel the alert")
    cancel = await ann.next(timeout=10)
    assert "CANCELLED" in cancel["text"]
    assert cancel["reply_to_message"]["message_id"] == alert["message_id"]
    # The cancellation's report names the alert it cancels, not only its own number.
    queued = (await bot_messages(harness, AUTHOR))[-1]
    for _ in range(50):
        final = await bot_message(harness.emu, AUTHOR, queued["message_id"])
        if "finished" in final["text"]:
            break
        await asyncio.sleep(0.2)
    assert re.match(rf"✅ Cancellation #\d+ of alert #{original_id} finished", final["text"])
    assert "Delivered: 2 / 2" in final["text"]
    assert buttons(final) == []  # a cancellation is not updated or cancelled in turn
    assert "no active alerts" in (await harness.citizen(714).say("/alerts"))["text"]


async def test_invalid_input_is_explained_and_asked_again(harness: Harness) -> None:
    author = await staff(harness, AUTHOR)
    msg = await author.say("/alert")
    assert "buttons" in (await author.say("traffic please"))["text"]
    msg = await pressed(harness, author, msg, "Traffic")
    # Nothing selected yet: refused, the step stays.
    msg = await pressed(harness, author, msg, "Done ✔")
    assert "districts" in msg["text"]
    msg = await pressed(harness, author, msg, "Harbour")
    assert "Harbour" in msg["text"]
    msg = await pressed(harness, author, msg, "Done ✔")
    msg = await pressed(harness, author, msg, "Severe")
    await author.press(msg, "Expected")
    await author.next()
    reply = await author.say("x" * 201)
    assert "201 characters; the limit is 200" in reply["text"]
    assert "Body text" in (await author.say("Fog on the harbour road"))["text"]
    assert "send text" in (await author.say("/skip"))["text"]  # the body cannot be skipped
    await author.say("Visibility under 50 m.")
    await author.say("/skip")
    await author.say("/skip")  # no Chinese version
    reply = await author.say("yesterday")
    assert "could not read that time" in reply["text"]
    assert "(Asia/Shanghai, UTC+08:00)" in reply["text"]
    # A typed time is the bureau's (BOT_TIMEZONE, Asia/Shanghai by default), shown back so.
    local = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(hours=2)).strftime(
        "%Y-%m-%d %H:%M"
    )
    reply = await author.say(local)
    assert "When should it be sent" in reply["text"]
    assert "a date and time in Asia/Shanghai, UTC+08:00" in reply["text"]
    assert "could not read" in (await author.say("3h"))["text"]  # after the expiry
    await author.say("30m")
    summary = await _summary(author)
    assert "Harbour" in summary["text"] and "Needs approval" in summary["text"]
    assert f"Expires: {local} (UTC+08:00)" in summary["text"]
    assert "Send:" in summary["text"] and "(UTC+08:00)" in summary["text"]
    await author.say("/cancel")


async def test_two_person_rule(harness: Harness) -> None:
    await subscribers(harness, 721)
    author = await staff(harness, AUTHOR)
    reviewer = await staff(harness, REVIEWER)
    summary = await compose(harness, author, severity="Extreme", headline="Gas leak")
    assert "Needs approval" in summary["text"]
    await author.press(summary, "✅ Send")
    waiting = await author.next()
    assert "waits for approval" in waiting["text"] and "1 colleague" in waiting["text"]
    request = await reviewer.next()
    assert "Approval needed" in request["text"] and "Comms Chen" in request["text"]
    preview = await reviewer.next()
    assert "Gas leak" in preview["text"]
    await harness.citizen(721).silence(1.5)  # nothing goes out before approval
    # The author forges the approve button for their own alert: refused and audited.
    await harness.emu.inject_callback(
        AUTHOR,
        preview["message_id"],
        preview["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        chat_id=REVIEWER,
    )
    await harness.settle()
    assert harness.app is not None
    async with harness.app.sessionmaker() as session:
        alert = (await session.scalars(select(Alert))).one()
        assert alert.status == "pending_approval"
        denied = (
            await session.scalars(select(AuditLog).where(AuditLog.action == "alert.approve_denied"))
        ).one()
        assert denied.actor_id == AUTHOR and denied.target_id == str(alert.id)
        assert denied.details == {"reason": "own alert"}
    await reviewer.press(preview, "✅ Approve and send")
    assert "approved by Comms Zhao" in (await reviewer.next())["text"]
    got = await harness.citizen(721).next(timeout=10)
    assert "Gas leak" in got["text"] and "EXTREME" in got["text"]
    async with harness.app.sessionmaker() as session:
        actions = set((await session.scalars(select(AuditLog.action))).all())
        alert = (await session.scalars(select(Alert))).one()
    assert {"alert.approve", "alert.submit"} <= actions
    assert alert.approved_by == REVIEWER and alert.created_by == AUTHOR


async def test_wizard_survives_a_restart(harness: Harness) -> None:
    author = await staff(harness, AUTHOR)
    msg = await author.say("/alert")
    msg = await pressed(harness, author, msg, "Traffic")
    await author.press(msg, "All districts")
    await harness.settle()
    await harness.restart()
    msg = await bot_message(harness.emu, AUTHOR, msg["message_id"])
    msg = await pressed(harness, author, msg, "Done ✔")  # the choice survived the restart
    msg = await pressed(harness, author, msg, "Moderate")
    assert "Urgency" in msg["text"]


async def test_all_districts_is_a_toggle_like_the_others(harness: Harness) -> None:
    # "Tap to select, then Done": All districts is selected, not a shortcut past the step.
    await subscribers(harness, 751)
    author = await staff(harness, AUTHOR)
    msg = await author.say("/alert")
    await author.press(msg, "Traffic")

    async def press(label: str) -> dict[str, Any]:
        await harness.settle()
        await author.press(await bot_message(harness.emu, AUTHOR, msg["message_id"]), label)
        await harness.settle()
        return await bot_message(harness.emu, AUTHOR, msg["message_id"])

    shown = await press("All districts")
    assert "Selected: All districts" in shown["text"]
    assert "✅ All districts" in buttons(shown) and "Done ✔" in buttons(shown)
    shown = await press("Harbour")  # a district replaces All
    assert "Selected: Harbour" in shown["text"]
    assert "All districts" in buttons(shown) and "✅ Harbour" in buttons(shown)
    shown = await press("All districts")  # and All replaces the districts
    assert "Selected: All districts" in shown["text"] and "Harbour" in buttons(shown)
    shown = await press("✅ All districts")  # tapped again: unselected
    assert "Selected: –" in shown["text"] and "All districts" in buttons(shown)
    shown = await press("Done ✔")  # nothing selected: refused, the step stays
    assert "Which districts" in shown["text"]
    await press("All districts")
    shown = await press("Done ✔")
    assert "Severity" in shown["text"]
    shown = await pressed(harness, author, shown, "Minor")
    await author.press(shown, "Immediate")
    await author.next()
    await author.say("Bridge closed")
    await author.say("Use the tunnel.")
    await author.say("/skip")  # no instruction
    expiry = await author.say("/skip")  # no Chinese version
    await author.press(expiry, "6 h")
    await author.press(await author.next(), "Send now")
    summary = await _summary(author)
    assert "Traffic · All districts" in summary["text"]
    assert "Recipients now: 1" in summary["text"]
    await author.say("/cancel")


async def test_citizens_cannot_use_staff_commands(harness: Harness) -> None:
    ann = await harness.new_citizen(731)
    reply = await ann.say("/alert")
    assert "New alert" not in reply["text"]
    await ann.say("/stop")
    assert harness.app is not None
    async with harness.app.sessionmaker() as session:
        assert (await session.scalars(select(Alert))).all() == []


async def test_unreachable_citizen_is_unsubscribed(harness: Harness) -> None:
    await subscribers(harness, 741, 742)
    # A deleted account sends the bot no update: the broadcast's 403 is how we learn it.
    await harness.emu.user(742).deactivate()
    author = await staff(harness, AUTHOR)
    summary = await compose(harness, author)
    await author.press(summary, "✅ Send")
    await harness.citizen(741).next(timeout=10)
    assert harness.app is not None
    for _ in range(50):
        async with harness.app.sessionmaker() as session:
            left = (
                await session.scalars(
                    select(Subscription.citizen_id).where(Subscription.citizen_id == 742)
                )
            ).all()
        if not left:
            break
        await asyncio.sleep(0.1)
    assert left == []


async def test_approval_messages_reach_each_colleague_in_their_language(
    harness: Harness,
) -> None:
    await subscribers(harness, 722)
    author = await staff(harness, AUTHOR)
    reviewer = await harness.new_citizen(REVIEWER, STAFF[REVIEWER], language_code="zh-hans")
    await reviewer.say("/start")
    summary = await compose(harness, author, severity="Extreme", headline="Gas leak")
    await author.press(summary, "✅ Send")
    await author.next()
    request = await reviewer.next()
    assert "需要审批" in request["text"] and "Comms Chen" in request["text"]
    preview = await reviewer.next()
    assert "大桥封闭" in preview["text"]  # the Chinese version of the alert
    await reviewer.press(preview, buttons(preview)[0])
    assert "已由 Comms Zhao 批准" in (await reviewer.next())["text"]
    await harness.settle()
    told = [m["text"] for m in await bot_messages(harness, AUTHOR)]
    assert "approved by Comms Zhao" in told[-1]  # the author reads English
    assert any("approved by Comms Zhao" in text for text in told), told


async def test_stale_approve_buttons_are_answered_and_removed(harness: Harness) -> None:
    await subscribers(harness, 723)
    author = await staff(harness, AUTHOR)
    reviewer = await staff(harness, REVIEWER)
    admin = await harness.new_citizen(ADMIN_ID, "Admin Sun")
    await admin.say("/start")
    summary = await compose(harness, author, severity="Extreme", headline="Gas leak")
    await author.press(summary, "✅ Send")
    assert "2 colleague" in (await author.next())["text"]
    await reviewer.next()
    preview = await reviewer.next()
    await admin.next()
    stale = await admin.next()
    assert buttons(stale) == ["✅ Approve and send", "✖ Reject"]
    await reviewer.press(preview, "✅ Approve and send")
    assert "approved by Comms Zhao" in (await reviewer.next())["text"]
    got = await harness.citizen(723).next(timeout=10)
    assert "Gas leak" in got["text"]
    # The admin's copy of the request is stale now: pressing it says so and removes it.
    query = await admin.press(stale, "✖ Reject")
    answer = await callback_answer(harness, query)
    assert "already approved by Comms Zhao" in answer["text"]
    await harness.settle()
    assert buttons(await bot_message(harness.emu, ADMIN_ID, stale["message_id"])) == []
    await harness.citizen(723).silence(1.0)  # still one alert, sent once
    assert harness.app is not None
    async with harness.app.sessionmaker() as session:
        alert = (await session.scalars(select(Alert))).one()
    assert alert.status in ("sending", "sent") and alert.approved_by == REVIEWER

"""/stats through the emulator: staff get the figures and a chart in their language; anyone
else is refused (and audited); a period that cannot be read gets a clear answer."""

from __future__ import annotations

import io
from datetime import timedelta

from PIL import Image
from sqlalchemy import select

from bot.db.models import AuditLog, utcnow
from tests.e2e.conftest import STAFF, Harness
from tests.stats.seed import SHANGHAI, seed_week

COMMS, ZHAO = list(STAFF)


async def _photo(harness: Harness, message: dict[str, object]) -> Image.Image:
    """The picture Telegram would show: downloaded through getFile, as a client would."""
    assert harness.app is not None
    sizes = message["photo"]
    assert isinstance(sizes, list)
    data = await harness.app.bot.download(sizes[-1]["file_id"])
    assert data is not None
    image = Image.open(io.BytesIO(data.read()))
    image.load()
    return image


async def test_staff_get_the_figures_and_a_chart(harness: Harness) -> None:
    assert harness.app is not None
    # The last seven days (retention keeps them), which plain /stats shows.
    today = utcnow().astimezone(SHANGHAI).date()
    first = today - timedelta(days=6)
    await seed_week(harness.app.sessionmaker, first)
    comms = await harness.new_citizen(COMMS, STAFF[COMMS])
    text = (await comms.say("/stats"))["text"]
    assert f"Statistics, {first} – {today} (Asia/Shanghai)" in text
    assert "Messages from citizens: 11 — 8 FAQ questions, 2 in cases with officers" in text
    assert "answered 5 (62%)" in text and "unanswered 2 (25%)" in text
    assert "• How do I register my dog? — 3" in text
    assert "• when does the zoo open — 2" in text
    assert "Cases opened: 3 — crisis 1, emergency 1" in text
    assert "Urgent (2): first reply p50 3m 00s" in text
    assert "Alerts sent: 1 to 4 subscribers — delivered 2, bot blocked 1, failed 1" in text
    assert "Subscribers today: 3" in text and "Traffic 2" in text and "Old Town 1" in text
    chart = await comms.next()
    assert chart["caption"].startswith("Messages per day and what the FAQ did")
    image = await _photo(harness, chart)
    assert image.format == "PNG" and image.size[0] > 1000 and image.size[1] > 400
    await harness.settle()  # the audit row is written with the update's last commit
    async with harness.app.sessionmaker() as session:
        viewed = (
            await session.scalars(select(AuditLog).where(AuditLog.action == "stats.view"))
        ).one()
    assert viewed.actor_id == COMMS
    assert viewed.details == {"first": first.isoformat(), "last": today.isoformat()}


async def test_staff_read_stats_in_their_language(harness: Harness) -> None:
    zhao = await harness.new_citizen(ZHAO, STAFF[ZHAO], language_code="zh")
    text = (await zhao.say("/stats today"))["text"]
    assert text.startswith("📊 统计，") and "市民消息：0 条" in text
    chart = await zhao.next()
    assert chart["caption"].startswith("每日消息数与常见问题的处理结果")
    assert (await _photo(harness, chart)).format == "PNG"


async def test_a_period_that_cannot_be_read_is_explained(harness: Harness) -> None:
    comms = await harness.new_citizen(COMMS, STAFF[COMMS])
    for bad in ("/stats yesterday", "/stats 2026-03-07 2026-03-01", "/stats 9999"):
        reply = (await comms.say(bad))["text"]
        assert reply.startswith("I could not read that period") and "/stats 30" in reply
    await comms.silence(0.5)  # no chart after a refusal


async def test_citizens_cannot_read_stats(harness: Harness) -> None:
    assert harness.app is not None
    ann = await harness.new_citizen(742)
    reply = (await ann.say("/stats"))["text"]
    assert reply == "This command is for staff only."
    await ann.silence(0.5)
    await harness.settle()
    async with harness.app.sessionmaker() as session:
        refused = (
            await session.scalars(select(AuditLog).where(AuditLog.action == "command.refused"))
        ).one()
    assert refused.actor_id == 742 and refused.details["command"] == "stats"

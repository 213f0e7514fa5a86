"""The figures of a period, read from a known week on both databases."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.stats.figures import MAX_DAYS, Period, PeriodError, collect, parse_period
from tests.support.stats import seed_week

SHANGHAI = ZoneInfo("Asia/Shanghai")
WEEK = Period(date(2026, 3, 1), date(2026, 3, 7), SHANGHAI)


def test_parse_period_as_staff_type_it() -> None:
    today = date(2026, 3, 7)
    assert parse_period("", today, SHANGHAI) == WEEK
    assert parse_period("today", today, SHANGHAI) == Period(today, today, SHANGHAI)
    assert parse_period("30", today, SHANGHAI).first == date(2026, 2, 6)
    assert parse_period("30d", today, SHANGHAI).first == date(2026, 2, 6)
    assert parse_period("2026-03-01 2026-03-07", today, SHANGHAI) == WEEK
    assert parse_period("2026-03-01..2026-03-07", today, SHANGHAI) == WEEK
    assert parse_period(" 2026-03-03 ", today, SHANGHAI).days == [date(2026, 3, 3)]
    for bad in (
        "yesterday",
        "0",
        f"{MAX_DAYS + 1}",
        "2026-03-07 2026-03-01",
        "1 2 3",
        "2026-13-01",
    ):
        with pytest.raises(PeriodError):
            parse_period(bad, today, SHANGHAI)
    with pytest.raises(PeriodError, match="at most"):
        parse_period("2024-01-01 2026-01-01", today, SHANGHAI)


def test_a_period_is_whole_days_in_the_bureau_zone() -> None:
    assert WEEK.start.isoformat() == "2026-03-01T00:00:00+08:00"
    assert WEEK.end.isoformat() == "2026-03-08T00:00:00+08:00"
    assert len(WEEK.days) == 7 and str(WEEK) == "2026-03-01 – 2026-03-07"


async def test_collect_counts_only_the_period(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await seed_week(sessionmaker)
    async with sessionmaker() as session:
        f = await collect(session, WEEK)
    assert f.per_day[date(2026, 3, 1)] == {"answer": 3, "suggest": 1, "none": 2, "throttled": 1}
    assert f.per_day[date(2026, 3, 2)] == {"officer": 2}
    assert f.per_day[date(2026, 3, 3)] == {"answer": 2}
    assert f.messages == 11 and f.questions == 8
    assert f.share("answer") == 5 / 8
    assert f.top_questions == [("dog-registration", 3), ("drone-rules", 2)]
    assert [(g.example, g.count) for g in f.top_gaps] == [
        ("when does the zoo open", 2),
        ("question", 1),  # the 👎 answer
    ]
    assert f.feedback == {"up": 1, "down": 1}
    assert f.cases_by_reason == {"crisis": 1, "emergency": 1, "human": 1}
    assert f.cases_by_priority == {"urgent": 2, "normal": 1}
    assert f.cases_by_status == {"closed": 2, "open": 1}
    urgent, normal = f.response
    assert (urgent.cases, urgent.closed, urgent.first_reply_median) == (2, 2, 180.0)
    assert urgent.close_median == 25 * 60 and normal.cases == 1
    assert normal.first_reply_median is None
    assert f.ratings == {5: 1, 3: 1} and f.rating_avg == 4.0
    [alert] = f.alerts
    assert (alert.recipients, alert.sent, alert.blocked, alert.failed, alert.waiting) == (
        4,
        2,
        1,
        1,
        0,
    )
    assert alert.headline == "Road closed"
    subs = f.subscribers
    assert subs.total == 3
    assert subs.by_category == {"traffic": 2, "weather-and-disasters": 2}
    assert subs.by_district == {"*": 2, "old-town": 1}
    assert [subs.per_day[d] for d in WEEK.days] == [2, 2, 3, 3, 3, 3, 3]


async def test_an_empty_period_has_zeros(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await seed_week(sessionmaker)
    async with sessionmaker() as session:
        f = await collect(session, Period(date(2025, 1, 1), date(2025, 1, 2), SHANGHAI))
    assert f.messages == 0 and f.share("answer") is None and f.rating_avg is None
    assert not f.alerts and not f.top_questions and not f.top_gaps
    assert f.subscribers.total == 3 and f.subscribers.per_day[date(2025, 1, 2)] == 0

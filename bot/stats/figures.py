"""The bureau's figures for a period, read from the database: what citizens asked and how the
FAQ did, the cases officers handled and how fast, the alerts sent and who subscribes.

Days are the bureau's (`BOT_TIMEZONE`). Figures can only cover what retention keeps: FAQ
questions (`RETENTION_FAQ_QUERIES_DAYS`) and alert deliveries of finished alerts
(`RETENTION_ALERT_DELIVERIES_DAYS`) go after their period; cases are an official record and
stay. Subscribers over time are today's subscribers by the day they first subscribed (an
unsubscribe deletes its row, so past totals are not kept).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import (
    Alert,
    AlertDelivery,
    Case,
    CasePriority,
    DeliveryState,
    Direction,
    FaqQuery,
    Message,
    Subscription,
)
from bot.faq.gaps import Gap, find_gaps
from bot.i18n import format_duration

# The longest period /stats reads in a chat: a year (and a leap day). The report has no limit.
MAX_DAYS = 366
# What the FAQ did with a question (FaqQuery.outcome), in the order charts stack them, and
# "officer": a citizen's message inside a case, read by officers instead.
OUTCOMES = ("answer", "suggest", "none", "throttled", "officer")


class PeriodError(ValueError):
    """A period that cannot be read; the message says what is accepted."""


@dataclass(frozen=True)
class Period:
    """Days `first`..`last` (both included) in the bureau's time zone."""

    first: date
    last: date
    zone: tzinfo

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise PeriodError("the period ends before it starts")

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), self.zone)

    @property
    def end(self) -> datetime:
        """The first moment after the period."""
        return datetime.combine(self.last + timedelta(days=1), time(), self.zone)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    def day_of(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    def __str__(self) -> str:
        if self.first == self.last:
            return self.first.isoformat()
        return f"{self.first.isoformat()} – {self.last.isoformat()}"


def parse_period(text: str, today: date, zone: tzinfo) -> Period:
    """Read a period as staff type it: nothing (the last 7 days), `today`, `30` or `30d` (the
    last 30 days, today included), one day `2026-12-01`, or two days `2026-12-01 2026-12-07`
    (also `2026-12-01..2026-12-07`)."""
    words = text.replace("..", " ").split()
    if not words:
        return Period(today - timedelta(days=6), today, zone)
    if len(words) == 1 and words[0].lower() in ("today", "今天"):
        return Period(today, today, zone)
    if len(words) == 1 and words[0].lower().removesuffix("d").isdigit():
        days = int(words[0].lower().removesuffix("d"))
        if not 1 <= days <= MAX_DAYS:
            raise PeriodError(f"a period is 1 to {MAX_DAYS} days")
        return Period(today - timedelta(days=days - 1), today, zone)
    if len(words) > 2:
        raise PeriodError("too many words for a period")
    try:
        first, last = (date.fromisoformat(w) for w in (words[0], words[-1]))
    except ValueError:
        raise PeriodError(f"not a period: {text.strip()[:40]!r}") from None
    if (last - first).days + 1 > MAX_DAYS:
        raise PeriodError(f"a period is at most {MAX_DAYS} days")
    return Period(first, last, zone)


@dataclass(frozen=True)
class StatsRow:
    """Response-time figures for one priority (seconds; None when no case has the figure)."""

    priority: str
    cases: int
    closed: int
    first_reply_median: float | None
    first_reply_p90: float | None
    close_median: float | None
    close_p90: float | None
    rating_avg: float | None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def case_stats(session: AsyncSession, period: Period | None = None) -> list[StatsRow]:
    """Time to first officer reply and to close, per priority, of the cases opened in the
    period (all cases without one)."""
    stmt = select(
        Case.priority, Case.opened_at, Case.first_response_at, Case.closed_at, Case.rating
    )
    if period is not None:
        stmt = stmt.where(Case.opened_at >= period.start, Case.opened_at < period.end)
    rows = (await session.execute(stmt)).all()
    result = []
    for priority in (CasePriority.URGENT, CasePriority.NORMAL):
        mine = [r for r in rows if r.priority == priority]
        first = [
            (r.first_response_at - r.opened_at).total_seconds()
            for r in mine
            if r.first_response_at is not None
        ]
        closed = [(r.closed_at - r.opened_at).total_seconds() for r in mine if r.closed_at]
        ratings = [r.rating for r in mine if r.rating is not None]
        result.append(
            StatsRow(
                priority=str(priority),
                cases=len(mine),
                closed=len(closed),
                first_reply_median=statistics.median(first) if first else None,
                first_reply_p90=_percentile(first, 90),
                close_median=statistics.median(closed) if closed else None,
                close_p90=_percentile(closed, 90),
                rating_avg=statistics.fmean(ratings) if ratings else None,
            )
        )
    return result


def format_stats(rows: Sequence[StatsRow]) -> str:
    """A plain-text table for the terminal."""
    header = ("priority", "cases", "closed", "1st reply p50", "p90", "close p50", "p90", "rating")
    body = [
        (
            r.priority,
            str(r.cases),
            str(r.closed),
            *(
                format_duration(v, sep="", missing="—")  # compact columns
                for v in (r.first_reply_median, r.first_reply_p90, r.close_median, r.close_p90)
            ),
            "—" if r.rating_avg is None else f"{r.rating_avg:.2f}",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in (header, *body)
    ]
    return "\n".join(line.rstrip() for line in lines)


@dataclass(frozen=True)
class AlertFigures:
    """One alert that started sending in the period, and what became of its deliveries."""

    id: int
    kind: str
    category: str
    headline: str
    started_at: datetime
    recipients: int
    sent: int
    blocked: int
    failed: int
    waiting: int  # not sent yet, or its rows already removed by retention


@dataclass(frozen=True)
class Subscribers:
    """Citizens subscribed to alerts today."""

    total: int  # with at least one subscription
    by_category: Counter[str]
    by_district: Counter[str]
    per_day: dict[date, int]  # today's subscribers who had subscribed by that day


@dataclass
class Figures:
    """Everything /stats and the report show for one period."""

    period: Period
    per_day: dict[date, Counter[str]]  # outcome (OUTCOMES) -> messages that day
    top_questions: list[tuple[str, int]]  # FAQ entry id, times answered
    top_gaps: list[Gap]
    feedback: Counter[str]  # up / down
    cases_by_reason: Counter[str]
    cases_by_priority: Counter[str]
    cases_by_status: Counter[str]
    response: list[StatsRow]
    ratings: Counter[int]  # 1..5 -> cases
    alerts: list[AlertFigures]
    subscribers: Subscribers

    @property
    def outcomes(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for day in self.per_day.values():
            total.update(day)
        return total

    @property
    def messages(self) -> int:
        return sum(self.outcomes.values())

    @property
    def questions(self) -> int:
        """Questions the FAQ read (the throttled ones and officers' case messages aside)."""
        o = self.outcomes
        return o["answer"] + o["suggest"] + o["none"]

    def share(self, outcome: str) -> float | None:
        return self.outcomes[outcome] / self.questions if self.questions else None

    @property
    def rating_avg(self) -> float | None:
        count = sum(self.ratings.values())
        return sum(k * v for k, v in self.ratings.items()) / count if count else None

    def alert_total(self, name: str) -> int:
        return sum(getattr(a, name) for a in self.alerts)


async def collect(session: AsyncSession, period: Period, *, top: int = 5) -> Figures:
    """Read every figure of `period` (a few grouped queries; rows of one period at most)."""
    start, end = period.start, period.end
    per_day: dict[date, Counter[str]] = {day: Counter() for day in period.days}
    faq_in_period = (FaqQuery.created_at >= start, FaqQuery.created_at < end)
    for created_at, outcome in await session.execute(
        select(FaqQuery.created_at, FaqQuery.outcome).where(*faq_in_period)
    ):
        per_day[period.day_of(created_at)][outcome] += 1
    for (created_at,) in await session.execute(
        select(Message.created_at).where(
            Message.direction == Direction.CITIZEN,
            Message.case_id.is_not(None),
            Message.created_at >= start,
            Message.created_at < end,
        )
    ):
        per_day[period.day_of(created_at)]["officer"] += 1

    top_questions = [
        (str(entry), int(n))
        for entry, n in await session.execute(
            select(FaqQuery.entry_id, func.count())
            .where(*faq_in_period, FaqQuery.outcome == "answer", FaqQuery.entry_id.is_not(None))
            .group_by(FaqQuery.entry_id)
            .order_by(func.count().desc(), FaqQuery.entry_id)
            .limit(top)
        )
    ]
    feedback = await _count_by(
        session, FaqQuery.feedback, func.count(), *faq_in_period, FaqQuery.feedback.is_not(None)
    )

    opened = (Case.opened_at >= start, Case.opened_at < end)

    ratings = await _count_by(session, Case.rating, func.count(), *opened, Case.rating.is_not(None))

    return Figures(
        period=period,
        per_day=per_day,
        top_questions=top_questions,
        top_gaps=(await find_gaps(session, since=start, until=end))[:top],
        feedback=feedback,
        cases_by_reason=await _count_by(session, Case.reason, func.count(), *opened),
        cases_by_priority=await _count_by(session, Case.priority, func.count(), *opened),
        cases_by_status=await _count_by(session, Case.status, func.count(), *opened),
        response=await case_stats(session, period),
        ratings=Counter({int(r): n for r, n in ratings.items()}),
        alerts=await _alerts(session, period),
        subscribers=await _subscribers(session, period),
    )


async def _count_by(session: AsyncSession, column: Any, value: Any, *where: Any) -> Counter[str]:
    """`value` (a count) per distinct `column` value, of the rows matching `where`."""
    stmt = select(column, value).where(*where).group_by(column)
    return Counter({str(key): int(n) for key, n in await session.execute(stmt)})


async def _alerts(session: AsyncSession, period: Period) -> list[AlertFigures]:
    alerts = (
        await session.scalars(
            select(Alert)
            .where(Alert.started_at >= period.start, Alert.started_at < period.end)
            .order_by(Alert.started_at, Alert.id)
        )
    ).all()
    if not alerts:
        return []
    states: dict[int, Counter[str]] = {a.id: Counter() for a in alerts}
    for alert_id, state, n in await session.execute(
        select(AlertDelivery.alert_id, AlertDelivery.state, func.count())
        .where(AlertDelivery.alert_id.in_(states))
        .group_by(AlertDelivery.alert_id, AlertDelivery.state)
    ):
        states[alert_id][state] = int(n)
    result = []
    for alert in alerts:
        counts = states[alert.id]
        sent = counts[DeliveryState.SENT]
        blocked = counts[DeliveryState.BLOCKED]
        failed = counts[DeliveryState.FAILED]
        recipients = max(alert.total_recipients, sum(counts.values()))
        content: dict[str, Any] = next(iter(alert.content.values()), {})
        result.append(
            AlertFigures(
                id=alert.id,
                kind=alert.kind,
                category=alert.category,
                headline=str(content.get("headline", "")),
                started_at=alert.started_at or alert.created_at,
                recipients=recipients,
                sent=sent,
                blocked=blocked,
                failed=failed,
                waiting=recipients - sent - blocked - failed,
            )
        )
    return result


async def _subscribers(session: AsyncSession, period: Period) -> Subscribers:
    citizens = func.count(func.distinct(Subscription.citizen_id))
    by_category = await _count_by(session, Subscription.category, citizens)
    by_district = await _count_by(session, Subscription.district, citizens)
    firsts = sorted(
        period.day_of(first)
        for (first,) in await session.execute(
            select(func.min(Subscription.created_at)).group_by(Subscription.citizen_id)
        )
    )
    per_day: dict[date, int] = {}
    seen = 0
    for day in period.days:
        while seen < len(firsts) and firsts[seen] <= day:
            seen += 1
        per_day[day] = seen
    return Subscribers(len(firsts), by_category, by_district, per_day)

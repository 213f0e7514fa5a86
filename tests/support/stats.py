"""A known week of activity (2026-03-01..07 in Asia/Shanghai, UTC+8, or any other week) for the
statistics tests, with rows just outside it on both sides that no figure may count."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import (
    Alert,
    AlertDelivery,
    AlertStatus,
    Case,
    Citizen,
    Direction,
    FaqQuery,
    Message,
    Subscription,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
FIRST = date(2026, 3, 1)


def _faq(
    citizen: int, at: datetime, outcome: str, entry: str | None = None, **kw: object
) -> FaqQuery:
    return FaqQuery(
        citizen_id=citizen,
        text=kw.pop("text", "question"),
        language=kw.pop("language", "en"),
        outcome=outcome,
        entry_id=entry,
        created_at=at,
        **kw,
    )


async def seed_week(sessionmaker: async_sessionmaker[AsyncSession], first: date = FIRST) -> None:
    """Rows for the seven days from `first` (Shanghai), one minute before and at the end."""

    def day(n: int, hour: int = 10) -> datetime:
        """Day n (1-7) of the week at `hour` o'clock in Shanghai."""
        return datetime.combine(first + timedelta(days=n - 1), time(hour), SHANGHAI)

    start = datetime.combine(first, time(), SHANGHAI)
    before, after = start - timedelta(minutes=1), start + timedelta(days=7)
    async with sessionmaker() as session:
        session.add_all(Citizen(id=i, first_name=f"Citizen {i}") for i in range(1, 6))
        await session.flush()
        session.add_all(
            [
                # Day 1: three answered, one suggested, two unanswered about the zoo, one
                # throttled.
                _faq(1, day(1), "answer", "dog-registration"),
                _faq(2, day(1, 11), "answer", "dog-registration"),
                _faq(3, day(1, 12), "answer", "drone-rules"),
                _faq(1, day(1, 13), "suggest", "event-permit"),
                _faq(2, day(1, 14), "none", text="When does the zoo open?"),
                _faq(3, day(1, 15), "none", text="when does the zoo open"),
                _faq(4, day(1, 16), "throttled"),
                # Day 3: two answered, with feedback either way.
                _faq(1, day(3), "answer", "dog-registration", feedback="up"),
                _faq(2, day(3, 11), "answer", "drone-rules", feedback="down"),
                # Outside the week.
                _faq(1, before, "answer", "fireworks-rules"),
                _faq(1, after, "none", text="outside the week"),
            ]
        )
        crisis = Case(
            citizen_id=1,
            priority="urgent",
            reason="crisis",
            status="closed",
            opened_at=day(2),
            first_response_at=day(2) + timedelta(minutes=2),
            closed_at=day(2) + timedelta(minutes=20),
            rating=5,
        )
        emergency = Case(
            citizen_id=2,
            priority="urgent",
            reason="emergency",
            status="closed",
            opened_at=day(2, 12),
            first_response_at=day(2, 12) + timedelta(minutes=4),
            closed_at=day(2, 12) + timedelta(minutes=30),
            rating=3,
        )
        waiting = Case(citizen_id=3, priority="normal", reason="human", opened_at=day(4))
        old = Case(citizen_id=4, priority="urgent", reason="crisis", opened_at=before)
        session.add_all([crisis, emergency, waiting, old])
        await session.flush()
        session.add_all(
            [
                Message(
                    citizen_id=1, case_id=crisis.id, direction=Direction.CITIZEN, created_at=day(2)
                ),
                Message(
                    citizen_id=1,
                    case_id=crisis.id,
                    direction=Direction.CITIZEN,
                    created_at=day(2, 11),
                ),
                Message(
                    citizen_id=1, case_id=crisis.id, direction=Direction.OFFICER, created_at=day(2)
                ),
                Message(
                    citizen_id=4, case_id=old.id, direction=Direction.CITIZEN, created_at=before
                ),
            ]
        )
        sent = Alert(
            identifier="stats-1",
            status=AlertStatus.SENT,
            category="traffic",
            severity="Moderate",
            content={"en": {"headline": "Road closed"}},
            started_at=day(5),
            finished_at=day(5, 11),
            total_recipients=4,
        )
        earlier = Alert(
            identifier="stats-0",
            status=AlertStatus.SENT,
            category="traffic",
            severity="Minor",
            started_at=before,
            total_recipients=1,
        )
        session.add_all([sent, earlier])
        await session.flush()
        session.add_all(
            AlertDelivery(alert_id=sent.id, citizen_id=c, state=s)
            for c, s in [(1, "sent"), (2, "sent"), (3, "blocked"), (4, "failed")]
        )
        session.add_all(
            [
                Subscription(
                    citizen_id=3, category="traffic", created_at=start - timedelta(days=9)
                ),
                Subscription(citizen_id=1, category="weather-and-disasters", created_at=day(1)),
                Subscription(
                    citizen_id=2, category="traffic", district="old-town", created_at=day(3)
                ),
                Subscription(
                    citizen_id=2,
                    category="weather-and-disasters",
                    district="old-town",
                    created_at=day(3, 12),
                ),
            ]
        )
        await session.commit()

"""Knowledge gaps: unanswered and 👎 questions grouped for curators."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db import repo
from bot.db.models import FaqQuery, utcnow
from bot.faq.gaps import find_gaps, group_questions


def test_similar_questions_group_and_languages_stay_apart() -> None:
    rows = [
        ("Where can I adopt a police dog?", "en", None, None),
        ("where to adopt retired police dogs", "en", None, None),
        ("How do I renew a fishing licence?", "en", None, None),
        ("adopt a police dog??", "en", "down", "lost-property"),
        ("退役警犬怎么领养", "zh", None, None),
        ("退役警犬如何领养", "zh", None, None),
    ]
    gaps = group_questions(rows)
    assert [(g.language, g.count) for g in gaps] == [("en", 3), ("zh", 2), ("en", 1)]
    dogs = gaps[0]
    assert (dogs.unanswered, dogs.disliked, dogs.entries) == (2, 1, {"lost-property": 1})
    assert dogs.example == "Where can I adopt a police dog?"


async def test_find_gaps_reads_recent_unanswered_and_disliked(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as s:
        await repo.upsert_citizen(
            s, 1, first_name="A", last_name=None, username=None, telegram_language="en"
        )
        s.add_all(
            [
                FaqQuery(citizen_id=1, text="police dog adoption", language="en", outcome="none"),
                FaqQuery(citizen_id=1, text="adopting a police dog", language="en", outcome="none"),
                FaqQuery(
                    citizen_id=1,
                    text="lost id",
                    language="en",
                    outcome="answer",
                    entry_id="id-card-lost",
                    feedback="up",
                ),
                FaqQuery(
                    citizen_id=1,
                    text="old question",
                    language="en",
                    outcome="none",
                    created_at=utcnow() - timedelta(days=90),
                ),
            ]
        )
        await s.commit()
        gaps = await find_gaps(s)
    assert len(gaps) == 1 and gaps[0].count == 2
    assert sorted(gaps[0].variants) == ["adopting a police dog", "police dog adoption"]

"""Knowledge gaps: what citizens asked that the FAQ could not answer, or answered badly.

Curators turn these into new entries or new phrasings. Questions are grouped by similarity
(rapidfuzz `token_set_ratio` on normalised text, or character overlap for Chinese) so one
missing topic shows up as one line with a count, not as a hundred near-duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rapidfuzz import fuzz, process
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import FaqQuery, utcnow
from bot.faq.normalize import normalize

# Groups stay readable at this similarity: "lost dog" and "my dog is lost" join, "lost passport"
# does not.
DEFAULT_SIMILARITY = 75.0
# Reading more than this many recent questions per run buys nothing for a curator's list.
MAX_QUESTIONS = 20_000


@dataclass
class Gap:
    """One group of similar questions."""

    example: str
    language: str
    unanswered: int = 0
    disliked: int = 0
    variants: list[str] = field(default_factory=list)
    entries: dict[str, int] = field(default_factory=dict)  # 👎 answers given, by entry

    @property
    def count(self) -> int:
        return self.unanswered + self.disliked


def group_questions(
    rows: Sequence[tuple[str, str, str | None, str | None]],
    similarity: float = DEFAULT_SIMILARITY,
) -> list[Gap]:
    """Group (text, language, feedback, entry_id) rows; biggest groups first."""
    gaps: list[Gap] = []
    # Per language: normalised first question of each group, and the group it stands for.
    keys: dict[str, list[str]] = {}
    owners: dict[str, list[Gap]] = {}
    for text, language, feedback, entry_id in rows:
        key = normalize(text)
        if not key:
            continue
        lang_keys = keys.setdefault(language, [])
        lang_gaps = owners.setdefault(language, [])
        found = process.extractOne(
            key, lang_keys, scorer=fuzz.token_set_ratio, score_cutoff=similarity
        )
        if found is not None:
            gap = lang_gaps[found[2]]
        else:
            gap = Gap(example=text, language=language)
            gaps.append(gap)
            lang_keys.append(key)
            lang_gaps.append(gap)
        if feedback == "down":
            gap.disliked += 1
            if entry_id:
                gap.entries[entry_id] = gap.entries.get(entry_id, 0) + 1
        else:
            gap.unanswered += 1
        if text not in gap.variants and len(gap.variants) < 5:
            gap.variants.append(text)
    gaps.sort(key=lambda g: (-g.count, g.example))
    return gaps


async def find_gaps(
    session: AsyncSession,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    similarity: float = DEFAULT_SIMILARITY,
) -> list[Gap]:
    """Unanswered and 👎 questions since a date (default: 30 days) and before `until` (default:
    now), grouped."""
    since = since or utcnow() - timedelta(days=30)
    stmt = (
        select(FaqQuery.text, FaqQuery.language, FaqQuery.feedback, FaqQuery.entry_id)
        .where(
            FaqQuery.created_at >= since,
            or_(FaqQuery.outcome == "none", FaqQuery.feedback == "down"),
        )
        .order_by(FaqQuery.created_at.desc())
        .limit(MAX_QUESTIONS)
    )
    if until is not None:
        stmt = stmt.where(FaqQuery.created_at < until)
    rows = [tuple(r) for r in (await session.execute(stmt)).all()]
    return group_questions(rows, similarity)  # type: ignore[arg-type]

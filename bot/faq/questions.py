"""The questions the FAQ saw (`FaqQuery` rows): recorded as asked, a suggestion the citizen
picked, their 👍/👎. Curators read them back as gaps (`bot.faq.gaps`); the buttons under an
answer carry a question's id."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import FaqQuery, random_id
from bot.db.session import release
from bot.faq.matcher import MatchResult
from bot.faq.telegram_html import MAX_MESSAGE_LENGTH


def record_throttled(session: AsyncSession, citizen_id: int | None, text: str, lang: str) -> None:
    """A question asked while the citizen's automatic answers pause (flood control): kept for
    curators, written with the update's last commit."""
    session.add(FaqQuery(citizen_id=citizen_id, text=text, language=lang, outcome="throttled"))


async def record_question(
    session: AsyncSession, citizen_id: int | None, text: str, lang: str, result: MatchResult
) -> int:
    """A question and what the matcher made of it; returns its id for the buttons.

    The database is never held across Telegram: the session's reads end here (its connection
    goes back to the pool) and the row, with the update's other new rows (the log line, the
    transcript), is written with the update's last commit, after the caller's answer."""
    best = result.best
    question = FaqQuery(
        id=random_id(),  # known now: the buttons carry it, the row is written after
        citizen_id=citizen_id,
        text=text[:MAX_MESSAGE_LENGTH],
        language=lang,
        outcome=result.outcome,
        entry_id=best.entry_id if best else None,
        score=best.score if best else None,
    )
    await release(session)
    session.add(question)
    return question.id


async def own_question(session: AsyncSession, question_id: int, user_id: int) -> FaqQuery | None:
    """The question a button carries, if `user_id` asked it: only the citizen who asked may
    use its buttons (forged data gets None)."""
    question = await session.get(FaqQuery, question_id)
    return question if question is not None and question.citizen_id == user_id else None


async def record_pick(session: AsyncSession, question: FaqQuery, entry_id: str) -> None:
    """The citizen picked `entry_id` under a "Did you mean…": they told us what they meant,
    gold for calibration (committed now). A related entry picked under an answer changes
    nothing."""
    if question.outcome == "suggest":
        question.entry_id = entry_id
        question.outcome = "picked"
        await session.commit()


@dataclass(frozen=True)
class Rating:
    """What a 👍/👎 press did."""

    language: str  # the question's: the reply is in it
    recorded: bool  # False: the answer was rated already, this press changed nothing


async def rate_answer(
    session: AsyncSession, question_id: int, user_id: int, *, up: bool
) -> Rating | None:
    """👍 (`up`) or 👎 under an answer to `user_id`'s question, recorded once and committed
    before the caller replies. None when the question is not theirs (or gone)."""
    question = await own_question(session, question_id, user_id)
    if question is None:
        return None
    if question.feedback is not None:
        # Once per answer: a second press (a double tap, the other button before the first
        # edit landed, or forged data) changes nothing.
        return Rating(question.language, recorded=False)
    question.feedback = "up" if up else "down"
    await session.commit()
    return Rating(question.language, recorded=True)

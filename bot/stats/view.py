"""/stats as staff ask for it in a chat: the period's figures read and the viewing audited."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import repo
from bot.db.session import release
from bot.stats.figures import Figures, Period, collect


async def view_figures(session: AsyncSession, period: Period, *, actor_id: int | None) -> Figures:
    """The figures of `period` for `actor_id`, audited. The session's reads end here (its
    connection goes back before the caller posts the text and draws the chart); the audit row
    stays in it, written with the update's last commit."""
    figures = await collect(session, period)
    repo.audit(
        session,
        "stats.view",
        actor_id=actor_id,
        first=period.first.isoformat(),
        last=period.last.isoformat(),
    )
    await release(session)
    return figures

"""A citizen's own choices and whether the bot can reach them: the language they picked,
blocking and unblocking the bot, and a chat Telegram refused with 403.

(`bot.privacy` holds /forget and what /privacy says.)"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db import repo
from bot.db.models import Citizen, utcnow


async def choose_language(session: AsyncSession, citizen: Citizen, code: str) -> None:
    """The citizen picked the interface language `code` (one the bot has): committed at once,
    before the bot confirms in that language."""
    citizen.language = code
    await session.commit()


def record_blocked(citizen: Citizen, blocked: bool) -> None:
    """The citizen blocked (`blocked`) or unblocked the bot; written with the update's last
    commit."""
    citizen.blocked_bot = blocked
    citizen.blocked_at = utcnow() if blocked else None


async def mark_unreachable(sessionmaker: async_sessionmaker[AsyncSession], citizen_id: int) -> None:
    """Telegram refused a reply to this citizen with 403 (they blocked the bot or are gone):
    alerts skip them until they write again. In a session and transaction of its own: the
    update's session has ended by the time the dispatcher's error handlers run."""
    async with sessionmaker() as session:
        await repo.mark_unreachable(session, [citizen_id])
        await session.commit()

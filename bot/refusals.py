"""What a user sent that the bot would not or could not act on, audited so probing and forged
data show in the log. The rows are written with the update's last commit, except where the
officers' chat answers at once (committed before the reply)."""

from __future__ import annotations

from collections.abc import Set

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import repo
from bot.db.models import Role

# Telegram's callback data is at most 64 bytes; the log keeps no more of whatever arrives.
MAX_DATA_CHARS = 64


def command_refused(
    session: AsyncSession, *, actor_id: int | None, command: str, roles: Set[Role]
) -> None:
    """A command the sender's roles do not allow (e.g. a citizen's /close)."""
    repo.audit(session, "command.refused", actor_id=actor_id, command=command, roles=sorted(roles))


def unknown_button(session: AsyncSession, *, actor_id: int, data: str | None) -> None:
    """A button whose data no router understands: old, or forged."""
    repo.audit(session, "callback.unknown", actor_id=actor_id, data=(data or "")[:MAX_DATA_CHARS])


def forged_case_button(session: AsyncSession, *, actor_id: int, data: str | None) -> None:
    """A case's button (rating, "talk again") pressed by someone else or naming no case."""
    repo.audit(session, "callback.refused", actor_id=actor_id, data=data)


async def not_an_officer(
    session: AsyncSession, *, actor_id: int | None, chat_id: int, what: str
) -> None:
    """An officers' command from someone without the officer role (committed)."""
    repo.audit(
        session,
        "officer.refused",
        actor_id=actor_id,
        target_type="chat",
        target_id=chat_id,
        what=what,
    )
    await session.commit()


async def not_relayed(
    session: AsyncSession, *, actor_id: int, case_id: int, message_id: int
) -> None:
    """A message in a case topic from someone who is not an officer: kept from the citizen
    (committed)."""
    repo.audit(
        session,
        "case.relay.refused",
        actor_id=actor_id,
        target_type="case",
        target_id=case_id,
        message_id=message_id,
    )
    await session.commit()

"""What a user sent that the bot would not or could not act on, audited so probing and forged
data show in the log. The rows are written with the update's last commit."""

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

"""Filters checked on the event loop.

aiogram runs a filter that is not a coroutine (a bare magic filter such as
`F.chat.type == "private"`, or a plain function) in a worker thread, one thread hop per filter
per handler: in a surge that was a tenth of the CPU an update costs, for checks that take
microseconds. `Is` wraps a magic filter so it is resolved in place; the routers' own
predicates are coroutines for the same reason.
"""

from __future__ import annotations

from typing import Any

from aiogram import F
from aiogram.filters import Filter
from magic_filter import MagicFilter

from bot.db.models import ALERT_ROLES, Role


class Is(Filter):
    """A magic filter resolved on the event loop; its result is what aiogram would get."""

    def __init__(self, magic: MagicFilter) -> None:
        self.magic = magic

    async def __call__(self, event: Any) -> Any:
        return self.magic.resolve(event)

    def __str__(self) -> str:
        return f"Is({self.magic!r})"


PRIVATE = Is(F.chat.type == "private")
PRIVATE_CALLBACK = Is(F.message.chat.type == "private")


async def alert_staff(_event: object, roles: set[Role] | None = None) -> bool:
    """Communications staff or an admin (`roles` comes from the identity middleware)."""
    return bool(roles and ALERT_ROLES & roles)

"""aiogram routers only: read the update, call a service, render the reply.

The order is explicit: commands first, the catch-alls last.
"""

from __future__ import annotations

from collections.abc import Callable

from aiogram import Router

from handlers import (
    alerts_staff,
    cases,
    common,
    errors,
    fallback,
    faq,
    officers,
    stats,
    subscriptions,
    triage,
)

# Each module's factory builds its router afresh, so an application built twice in one
# process (a restart in tests, the demo) gets routers of its own.
# cases.make_watch_router only observes blocks and always passes them on to common.
FACTORIES: tuple[Callable[[], Router], ...] = (
    errors.make_router,  # errors only: what a handler that Telegram refused leaves behind
    cases.make_watch_router,
    subscriptions.make_router,  # before common: its sub_ deep links are a more specific /start
    common.make_router,
    alerts_staff.make_router,  # staff only; before triage so wizard texts are not triaged
    stats.make_router,  # staff only
    officers.make_router,
    cases.make_router,
    triage.make_router,
    faq.make_router,
    fallback.make_router,
)


def setup_routers() -> Router:
    """A new root router with every feature router, in the order above."""
    root = Router(name="safewell")
    root.include_routers(*(make() for make in FACTORIES))
    return root

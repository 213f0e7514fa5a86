"""aiogram routers only: read the update, call a service, render the reply.

The order is explicit: commands first, the catch-alls last.
"""

from __future__ import annotations

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

# cases.watch_router only observes blocks and always passes them on to common.
ROUTERS: tuple[Router, ...] = (
    errors.router,  # errors only: what a handler that Telegram refused leaves behind
    cases.watch_router,
    subscriptions.router,  # before common: its sub_ deep links are a more specific /start
    common.router,
    alerts_staff.router,  # staff only; before triage so wizard texts are not triaged
    stats.router,  # staff only
    officers.router,
    cases.router,
    triage.router,
    faq.router,
    fallback.router,
)


def setup_routers() -> Router:
    """A root router with every feature router in matching order.

    Module routers are singletons, and aiogram refuses to attach a router twice; a process that
    builds the application again (a restart in tests, the demo) first detaches them from the
    previous, discarded root. aiogram has no public detach, hence the private attribute.
    """
    root = Router(name="safewell")
    for router in ROUTERS:
        router._parent_router = None
    root.include_routers(*ROUTERS)
    return root

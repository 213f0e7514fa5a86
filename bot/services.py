"""The long-lived services a running bot gives its handlers, in one typed container.

The composition root (`bot.app.build`) builds one `Services` per application and puts it into
the dispatcher's workflow data in one place, each field under its own name: aiogram hands a
handler (or a filter) the values its parameters name, so a handler asks for a service with a
parameter of the field's name and type (`faq: FaqService`). `tests/test_layering.py` checks
every registered handler's parameters against these fields, aiogram's names and the
middlewares'. Handlers do not import this module; they name the services' own types.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.alerts.catalog import Catalog
from bot.alerts.engine import Broadcaster
from bot.alerts.ratelimit import RateLimiter
from bot.cases.service import HandoffService
from bot.config import Settings
from bot.faq.service import FaqService
from bot.i18n import Locales
from bot.intake import UrgentReplies
from bot.stats.weekly import WeeklyReport
from bot.triage import Triage


@dataclass(frozen=True)
class Services:
    """What handlers and the update middlewares are given by name (one of each per process)."""

    settings: Settings
    # The handlers' connections (the update's own session comes from its middleware).
    sessionmaker: async_sessionmaker[AsyncSession]
    locales: Locales
    faq: FaqService
    triage: Triage
    handoff: HandoffService
    urgent_replies: UrgentReplies
    # The alert services (`bot.alerts.wiring.build_alerts`).
    catalog: Catalog
    rate_limiter: RateLimiter
    broadcaster: Broadcaster
    # None unless STATS_WEEKLY_REPORT is set.
    weekly_report: WeeklyReport | None = None

    def workflow_data(self) -> dict[str, Any]:
        """The fields by name, as the dispatcher's workflow data (the services themselves,
        not copies)."""
        return {field.name: getattr(self, field.name) for field in fields(self)}

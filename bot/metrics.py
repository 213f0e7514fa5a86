"""Prometheus metrics: what this process counts, and what the database says when scraped.

Counters and histograms are this process's own (updates handled, Bot API calls, rate-limiter
waits, triage levels, FAQ outcomes). Several processes (webhook processes behind nginx,
`safewell api` beside a polling bot) each serve `GET /metrics`, and Prometheus scrapes every
one of them and sums: nothing is shared between processes, so nothing needs locking. The
gauges that describe the whole deployment (open cases, the oldest unclaimed urgent case, the
relay outbox, the inbox, broadcasts in progress) are read from the database at scrape time, so
every process reports the same values; dashboards take `max` of them, not `sum`.

Label values are bounded: update types, Bot API method names, error classes, triage levels
and FAQ outcomes are small fixed sets; no ids and no text ever become labels.
"""

from __future__ import annotations

from datetime import datetime

from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.db.models import (
    RETENTION_NEXT,
    Alert,
    AlertDelivery,
    AlertStatus,
    Case,
    CasePriority,
    CaseStatus,
    InboxUpdate,
    Message,
    RelayState,
    WorkClaim,
    utcnow,
)

__all__ = ["CONTENT_TYPE_LATEST", "render"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

UPDATES = Counter(
    "safewell_updates_total",
    "Updates the dispatcher handled, by update type and outcome (handled, failed).",
    ["type", "outcome"],
)
UPDATE_SECONDS = Histogram(
    "safewell_update_seconds",
    "Time the dispatcher took for one update (handlers, database, Telegram calls), by type.",
    ["type"],
    buckets=LATENCY_BUCKETS,
)
TRIAGE = Counter(
    "safewell_triage_total",
    "Citizen messages triaged by the handlers, by level (crisis, emergency, human, normal).",
    ["level"],
)
FAQ = Counter(
    "safewell_faq_total",
    "Citizen questions by FAQ outcome (answer, suggest, none, throttled).",
    ["outcome"],
)
TELEGRAM = Counter(
    "safewell_telegram_requests_total",
    "Bot API calls by method and result: ok, or the error (400, 403, 429, 5xx, network…).",
    ["method", "result"],
)
LIMITER_WAIT = Histogram(
    "safewell_rate_limiter_wait_seconds",
    "Seconds a send waited for the global send rate, by line (lifeline, critical, urgent, "
    "broadcast).",
    ["line"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)

# Read from the database at scrape time (`refresh`).
OPEN_CASES = Gauge(
    "safewell_open_cases", "Cases not closed, by priority and status.", ["priority", "status"]
)
OLDEST_UNCLAIMED_URGENT = Gauge(
    "safewell_oldest_unclaimed_urgent_case_seconds",
    "Age of the oldest urgent case no officer has claimed (0 when there is none).",
)
OUTBOX = Gauge("safewell_relay_outbox", "Officers' messages waiting to be relayed to citizens.")
OUTBOX_OLDEST = Gauge(
    "safewell_relay_outbox_oldest_seconds",
    "Age of the oldest officer's message waiting to be relayed (0 when none waits).",
)
INBOX = Gauge("safewell_inbox_updates", "Updates kept but not handled yet, by state.", ["state"])
BROADCAST = Gauge(
    "safewell_broadcast_deliveries",
    "Deliveries of alerts being sent, by delivery state.",
    ["state"],
)
RETENTION_DELETED = Counter(
    "safewell_retention_deleted_total",
    "Rows the retention job deleted in this process, by kind (messages, faq_queries, "
    "processed_updates, alert_deliveries).",
    ["kind"],
)
for _kind in ("messages", "faq_queries", "processed_updates", "alert_deliveries"):
    RETENTION_DELETED.labels(_kind)
RETENTION_NEXT_PASS = Gauge(
    "safewell_retention_next_pass_timestamp_seconds",
    "When the next retention pass is due, Unix time (0 before the first pass); a time long "
    "past means no process is pruning.",
)
SCRAPE_ERRORS = Counter(
    "safewell_metrics_database_errors_total",
    "Scrapes whose database gauges could not be read (the database was away).",
)

_ERRORS: tuple[tuple[type[TelegramAPIError], str], ...] = (
    (TelegramRetryAfter, "429"),
    (TelegramEntityTooLarge, "413"),
    (TelegramNetworkError, "network"),
    (TelegramBadRequest, "400"),
    (TelegramUnauthorizedError, "401"),
    (TelegramForbiddenError, "403"),
    (TelegramNotFound, "404"),
    (TelegramConflictError, "409"),
    (TelegramServerError, "5xx"),
)


def error_label(exc: BaseException) -> str:
    """A Bot API failure as a metric label: its HTTP code, "network", or "other"."""
    for kind, label in _ERRORS:
        if isinstance(exc, kind):
            return label
    return "other"


def telegram_call(method: str, exc: BaseException | None = None) -> None:
    """Count one Bot API call (each attempt, retries included)."""
    TELEGRAM.labels(method, "ok" if exc is None else error_label(exc)).inc()


def _age(since: datetime | None, now: datetime) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0


async def relay_outbox(session: AsyncSession) -> tuple[int, float]:
    """Officers' messages waiting to be relayed, and the age of the oldest (0: none)."""
    pending, first = (
        await session.execute(
            select(func.count(), func.min(Message.created_at)).where(
                Message.relay_state == RelayState.PENDING
            )
        )
    ).one()
    return int(pending), _age(first, utcnow())


async def refresh(session: AsyncSession) -> None:
    """Read the deployment-wide gauges from the database."""
    now = utcnow()
    counts = await session.execute(
        select(Case.priority, Case.status, func.count())
        .where(Case.status != CaseStatus.CLOSED)
        .group_by(Case.priority, Case.status)
    )
    OPEN_CASES.clear()
    for level in CasePriority:
        for open_state in (CaseStatus.OPEN, CaseStatus.CLAIMED):
            OPEN_CASES.labels(level.value, open_state.value).set(0)
    for priority, status, count in counts:
        OPEN_CASES.labels(priority, status).set(count)
    oldest = await session.scalar(
        select(func.min(Case.opened_at)).where(
            Case.status == CaseStatus.OPEN, Case.priority == CasePriority.URGENT
        )
    )
    OLDEST_UNCLAIMED_URGENT.set(_age(oldest, now))
    pending, outbox_age = await relay_outbox(session)
    OUTBOX.set(pending)
    OUTBOX_OLDEST.set(outbox_age)
    inbox = await session.execute(
        select(InboxUpdate.parked, func.count()).group_by(InboxUpdate.parked)
    )
    INBOX.labels("waiting").set(0)
    INBOX.labels("parked").set(0)
    for parked, count in inbox:
        INBOX.labels("parked" if parked else "waiting").set(count)
    deliveries = await session.execute(
        select(AlertDelivery.state, func.count())
        .join(Alert, Alert.id == AlertDelivery.alert_id)
        .where(Alert.status.in_([AlertStatus.SENDING, AlertStatus.PAUSED]))
        .group_by(AlertDelivery.state)
    )
    BROADCAST.clear()
    for state, count in deliveries:
        BROADCAST.labels(state).set(count)
    due = await session.scalar(select(WorkClaim.until).where(WorkClaim.name == RETENTION_NEXT))
    RETENTION_NEXT_PASS.set(due.timestamp() if due is not None else 0)


async def render(engine: AsyncEngine) -> bytes:
    """The text exposition of every metric, the database gauges read now.

    A database that does not answer leaves those gauges at their last values and counts the
    failure: the process's own counters are still worth scraping then.
    """
    try:
        async with AsyncSession(engine) as session:
            await refresh(session)
    except Exception:
        SCRAPE_ERRORS.inc()
    return generate_latest(REGISTRY)

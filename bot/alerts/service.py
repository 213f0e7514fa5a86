"""Subscriptions, composing alerts, the two-person rule, updates and cancellations.

Knows nothing of aiogram: handlers, the CLI and the HTTP API call these functions with a
session and commit themselves. Every staff action is audited.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import Select, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.alerts.catalog import ALL_DISTRICTS, Catalog
from bot.alerts.render import RenderedAlert, render_alert
from bot.db import repo
from bot.db.models import (
    ALERT_ROLES,
    Alert,
    AlertDelivery,
    AlertKind,
    AlertStatus,
    Citizen,
    DeliveryState,
    StaffRole,
    Subscription,
    utcnow,
)

SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor")
URGENCIES = ("Immediate", "Expected", "Future", "Past", "Unknown")
CERTAINTIES = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")
TEXT_FIELDS = ("headline", "description", "instruction")
# Nobody has received anything of these yet: a CAP Cancel withdraws them, an Update replaces them.
UNSENT = (AlertStatus.DRAFT, AlertStatus.PENDING_APPROVAL, AlertStatus.SCHEDULED)
SENDER = "safewell@example-city.invalid"  # CAP <sender>; sample bureau


class AlertError(Exception):
    """An alert action is not allowed (wrong state, own approval, unknown id…)."""


def audit_alert(
    session: AsyncSession, action: str, alert_id: int, *, actor_id: int | None, **details: Any
) -> None:
    """One audit row about an alert (written with the caller's commit)."""
    repo.audit(
        session, action, actor_id=actor_id, target_type="alert", target_id=alert_id, **details
    )


@dataclass
class AlertDraft:
    """What staff (or a CAP file) supply for a new alert."""

    category: str
    severity: str
    content: dict[str, dict[str, str]]
    districts: list[str] = field(default_factory=list)  # empty = all districts
    urgency: str = "Unknown"
    certainty: str = "Observed"
    expires_at: datetime | None = None
    scheduled_at: datetime | None = None

    def check(self, catalog: Catalog, default_lang: str) -> None:
        """Raise AlertError naming the first invalid field."""
        if self.category not in catalog.categories:
            raise AlertError(f"unknown category {self.category!r}")
        unknown = [d for d in self.districts if d not in catalog.districts]
        if unknown:
            raise AlertError(f"unknown district(s): {', '.join(unknown)}")
        if self.severity not in SEVERITIES:
            raise AlertError(f"severity must be one of {', '.join(SEVERITIES)}")
        if self.urgency not in URGENCIES:
            raise AlertError(f"urgency must be one of {', '.join(URGENCIES)}")
        if not (self.content.get(default_lang) or {}).get("headline"):
            raise AlertError(f"a headline in the default language ({default_lang}) is required")
        now = utcnow()
        if self.expires_at is not None and self.expires_at <= now:
            raise AlertError("the expiry time is in the past")
        if (
            self.expires_at is not None
            and self.scheduled_at is not None
            and self.scheduled_at >= self.expires_at
        ):
            raise AlertError("the alert would expire before it is sent")


# ------------------------------------------------------------------------------ subscriptions


async def subscribe(
    session: AsyncSession, citizen_id: int, category: str, district: str = ALL_DISTRICTS
) -> bool:
    """Subscribe a citizen; False when they already had this subscription."""
    stmt = repo.dialect_insert(session, Subscription).values(
        citizen_id=citizen_id, category=category, district=district, created_at=utcnow()
    )
    result = await session.execute(
        stmt.on_conflict_do_nothing(index_elements=["citizen_id", "category", "district"])
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def unsubscribe(
    session: AsyncSession, citizen_id: int, subscription_id: int | None = None
) -> int:
    """Remove one subscription (by id) or all of them; returns how many were removed."""
    stmt = delete(Subscription).where(Subscription.citizen_id == citizen_id)
    if subscription_id is not None:
        stmt = stmt.where(Subscription.id == subscription_id)
    result = await session.execute(stmt)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def toggle_subscription(
    session: AsyncSession, citizen_id: int, category: str, district: str
) -> bool:
    """The picker's button: unsubscribe from this category and district if subscribed, else
    subscribe. True when the citizen is subscribed now."""
    removed = await session.execute(
        delete(Subscription).where(
            Subscription.citizen_id == citizen_id,
            Subscription.category == category,
            Subscription.district == district,
        )
    )
    if removed.rowcount:  # type: ignore[attr-defined]
        return False
    await subscribe(session, citizen_id, category, district)
    return True


async def subscriptions_of(session: AsyncSession, citizen_id: int) -> Sequence[Subscription]:
    """A citizen's subscriptions, oldest first."""
    stmt = (
        select(Subscription)
        .where(Subscription.citizen_id == citizen_id)
        .order_by(Subscription.category, Subscription.district)
    )
    return (await session.scalars(stmt)).all()


def recipients_select(alert_id: int, category: str, districts: list[str]) -> Select[Any]:
    """Distinct reachable citizens subscribed to category in one of districts (or '*')."""
    wanted = [*districts, ALL_DISTRICTS] if districts else None
    cond = [Subscription.category == category, Citizen.blocked_bot.is_(False)]
    cond.append(Citizen.banned.is_(False))
    if wanted is not None:
        cond.append(Subscription.district.in_(wanted))
    return (
        select(Subscription.citizen_id)
        .join(Citizen, Citizen.id == Subscription.citizen_id)
        .where(*cond)
        .distinct()
    )


async def count_recipients(session: AsyncSession, category: str, districts: list[str]) -> int:
    """How many citizens an alert for category/districts would reach now."""
    sub = recipients_select(0, category, districts).subquery()
    return int(await session.scalar(select(func.count()).select_from(sub)) or 0)


async def count_reply_recipients(session: AsyncSession, original_id: int) -> int:
    """How many citizens received the original alert (they get its update or cancellation)."""
    stmt = select(func.count()).where(
        AlertDelivery.alert_id == original_id, AlertDelivery.state == DeliveryState.SENT
    )
    return int(await session.scalar(stmt) or 0)


async def active_alerts(session: AsyncSession, limit: int = 10) -> Sequence[Alert]:
    """Sent, unexpired, uncancelled alerts, newest first."""
    now = utcnow()
    cancel = aliased(Alert)
    cancelled = exists().where(
        cancel.references_id == Alert.id,
        cancel.kind == AlertKind.CANCEL,
        cancel.status.in_([AlertStatus.SENDING, AlertStatus.SENT]),
    )
    stmt = (
        select(Alert)
        .where(
            Alert.kind == AlertKind.ALERT,
            Alert.status.in_([AlertStatus.SENDING, AlertStatus.SENT, AlertStatus.PAUSED]),
            or_(Alert.expires_at.is_(None), Alert.expires_at > now),
            ~cancelled,
        )
        .order_by(Alert.created_at.desc(), Alert.id.desc())
        .limit(limit)
    )
    return (await session.scalars(stmt)).all()


async def pending_approval(session: AsyncSession) -> Sequence[Alert]:
    """Alerts waiting for a second person's approval, oldest first."""
    return (
        await session.scalars(
            select(Alert).where(Alert.status == AlertStatus.PENDING_APPROVAL).order_by(Alert.id)
        )
    ).all()


async def replacement_of(session: AsyncSession, alert_id: int) -> int | None:
    """The alert that replaced a cancelled, never-sent one (a CAP Update), if any."""
    return await session.scalar(
        select(Alert.id)
        .where(Alert.references_id == alert_id, Alert.kind == AlertKind.ALERT)
        .order_by(Alert.id.desc())
        .limit(1)
    )


async def latest_update(session: AsyncSession, alert_id: int) -> Alert | None:
    """The newest sent update of an alert, if any (what /alerts should show)."""
    stmt = (
        select(Alert)
        .where(
            Alert.references_id == alert_id,
            Alert.kind == AlertKind.UPDATE,
            Alert.status.in_([AlertStatus.SENDING, AlertStatus.SENT]),
        )
        .order_by(Alert.id.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


# ------------------------------------------------------------------------------ composing


def new_identifier() -> str:
    """A unique CAP identifier for an alert we originate."""
    return f"safewell-{utcnow():%Y%m%d%H%M%S}-{uuid.uuid4().hex[:8]}"


def needs_approval(severity: str, approval_severities: Sequence[str]) -> bool:
    """Whether the two-person rule applies to this severity."""
    return severity.lower() in {s.lower() for s in approval_severities}


async def create_draft(
    session: AsyncSession,
    draft: AlertDraft,
    *,
    author_id: int | None,
    source: str = "wizard",
    kind: AlertKind = AlertKind.ALERT,
    references_id: int | None = None,
    identifier: str | None = None,
    cap_xml: str | None = None,
) -> Alert:
    """Store an alert as a draft (so its preview is rendered from the very row to be sent)."""
    alert = Alert(
        identifier=identifier or new_identifier(),
        kind=kind,
        references_id=references_id,
        status=AlertStatus.DRAFT,
        category=draft.category,
        districts=list(draft.districts),
        severity=draft.severity,
        urgency=draft.urgency,
        certainty=draft.certainty,
        content=draft.content,
        source=source,
        cap_xml=cap_xml,
        created_by=author_id,
        created_at=utcnow(),
        scheduled_at=draft.scheduled_at,
        expires_at=draft.expires_at,
    )
    session.add(alert)
    await session.flush()
    audit_alert(
        session, "alert.draft", alert.id, actor_id=author_id, kind=kind.value, source=source
    )
    return alert


async def get_alert(session: AsyncSession, alert_id: int) -> Alert:
    """An alert by id, or AlertError."""
    alert = await session.get(Alert, alert_id, populate_existing=True)
    if alert is None:
        raise AlertError(f"no alert {alert_id}")
    return alert


async def submit(
    session: AsyncSession,
    alert_id: int,
    *,
    actor_id: int | None,
    approval_severities: Sequence[str],
    progress: tuple[int, int] | None = None,
) -> Alert:
    """Send a draft: to approval when its severity needs a second person, else to the queue."""
    alert = await get_alert(session, alert_id)
    if alert.status != AlertStatus.DRAFT:
        raise AlertError(f"alert {alert_id} is {alert.status}, not a draft")
    if progress is not None:
        alert.progress_chat_id, alert.progress_message_id = progress
    if needs_approval(alert.severity, approval_severities) and alert.kind != AlertKind.CANCEL:
        alert.status = AlertStatus.PENDING_APPROVAL
        audit_alert(session, "alert.submit", alert.id, actor_id=actor_id)
        return alert
    _queue(alert)
    audit_alert(session, "alert.queue", alert.id, actor_id=actor_id)
    if alert.kind == AlertKind.CANCEL and alert.references_id is not None:
        await _halt(session, alert.references_id, by=alert.id, actor_id=actor_id)
    return alert


async def _halt(session: AsyncSession, alert_id: int, *, by: int, actor_id: int | None) -> None:
    """A cancelled alert that is still being sent (or paused) stops: the rest of its
    recipients never get it (nor /resume), and its cancellation goes to those who did."""
    original = await get_alert(session, alert_id)
    halted = await _move(
        session, original, [AlertStatus.SENDING, AlertStatus.PAUSED], AlertStatus.CANCELLED
    )
    if halted:
        audit_alert(session, "alert.halt", alert_id, actor_id=actor_id, by=by)


def _queue(alert: Alert) -> None:
    alert.status = AlertStatus.SCHEDULED
    if alert.scheduled_at is None:
        alert.scheduled_at = utcnow()


async def _move(
    session: AsyncSession, alert: Alert, sources: Sequence[str], target: str, **values: Any
) -> bool:
    """Change an alert's status only if it still is one of sources, in one statement.

    Reading the status and then writing it would let two people (or a CAP cancellation and an
    approval, or the broadcast engine) both act on the same state: the later write would win
    and, say, send a withdrawn alert. False when someone else moved it first.
    """
    result = await session.execute(
        update(Alert)
        .where(Alert.id == alert.id, Alert.status.in_(list(sources)))
        .values(status=target, **values)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(alert)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def approve(session: AsyncSession, alert_id: int, *, approver_id: int) -> Alert:
    """The second person's yes; the author can never approve their own alert."""
    alert = await get_alert(session, alert_id)
    if alert.status != AlertStatus.PENDING_APPROVAL:
        raise AlertError(f"alert {alert_id} is {alert.status}, not waiting for approval")
    if alert.created_by == approver_id:
        audit_alert(
            session, "alert.approve_denied", alert.id, actor_id=approver_id, reason="own alert"
        )
        raise AlertError("you cannot approve your own alert")
    now = utcnow()
    approved = await _move(
        session,
        alert,
        [AlertStatus.PENDING_APPROVAL],
        AlertStatus.SCHEDULED,
        approved_by=approver_id,
        approved_at=now,
        scheduled_at=alert.scheduled_at or now,
    )
    if not approved:
        raise AlertError(f"alert {alert_id} is {alert.status}, not waiting for approval")
    audit_alert(session, "alert.approve", alert.id, actor_id=approver_id)
    return alert


async def reject(session: AsyncSession, alert_id: int, *, actor_id: int) -> Alert:
    """A reviewer (or the author) withdraws an alert waiting for approval."""
    alert = await get_alert(session, alert_id)
    if not await _move(session, alert, [AlertStatus.PENDING_APPROVAL], AlertStatus.REJECTED):
        raise AlertError(f"alert {alert_id} is {alert.status}, not waiting for approval")
    audit_alert(session, "alert.reject", alert.id, actor_id=actor_id)
    return alert


async def supersede_unsent(
    session: AsyncSession,
    alert_id: int,
    draft: AlertDraft | None,
    *,
    actor_id: int | None,
    source: str,
    identifier: str | None = None,
    cap_xml: str | None = None,
) -> Alert | None:
    """An update (`draft`, its content) or a cancellation (None) of an alert nobody has
    received (a draft, waiting for approval, or scheduled). The alert is withdrawn, so it can no
    longer be approved or sent, and what takes its place is returned: for an update a new draft
    (submit it: the approval rules apply to what will actually be sent); for a cancellation
    the cancellation itself, kept unsent (there is nobody to tell) as the record of why.

    None when the alert is no longer unsent (it started sending meanwhile): then the update or
    cancellation must go to the people who got it.
    """
    alert = await get_alert(session, alert_id)
    if alert.kind != AlertKind.ALERT:
        raise AlertError(
            f"only an original alert can be {'cancelled' if draft is None else 'updated'}"
        )
    scheduled = alert.scheduled_at
    if not await _move(session, alert, UNSENT, AlertStatus.CANCELLED):
        return None
    if draft is None:
        draft, kind, action = _draft_of(alert), AlertKind.CANCEL, "alert.withdraw"
    else:
        kind, action = AlertKind.ALERT, "alert.replace"
        if scheduled is not None and scheduled > utcnow() and draft.scheduled_at is None:
            draft.scheduled_at = scheduled  # still sent when staff chose, not earlier
    successor = await create_draft(
        session,
        draft,
        author_id=actor_id,
        source=source,
        kind=kind,
        references_id=alert.id,
        identifier=identifier,
        cap_xml=cap_xml,
    )
    if kind == AlertKind.CANCEL:
        successor.status = AlertStatus.CANCELLED  # never sent: its alert reached nobody
    audit_alert(
        session,
        action,
        alert.id,
        actor_id=actor_id,
        by=successor.id,
        identifier=successor.identifier,
        source=source,
    )
    return successor


def _draft_of(alert: Alert) -> AlertDraft:
    """A draft with an alert's category, severity, content, districts, urgency and certainty."""
    return AlertDraft(
        category=alert.category,
        severity=alert.severity,
        content={lang: dict(texts) for lang, texts in alert.content.items()},
        districts=list(alert.districts),
        urgency=alert.urgency,
        certainty=alert.certainty,
    )


async def current_version(session: AsyncSession, alert: Alert) -> Alert:
    """The alert as it is now: an alert replaced before it was sent lives on in its
    replacement (and that one perhaps in another)."""
    seen = {alert.id}
    while alert.status == AlertStatus.CANCELLED:
        newer = await session.scalar(
            select(Alert)
            .where(Alert.references_id == alert.id, Alert.kind == AlertKind.ALERT)
            .order_by(Alert.id.desc())
            .limit(1)
        )
        if newer is None or newer.id in seen:
            break
        seen.add(newer.id)
        alert = newer
    return alert


async def discard(session: AsyncSession, alert_id: int, *, actor_id: int | None) -> Alert:
    """Withdraw an alert that has not started sending (draft, pending or scheduled)."""
    alert = await get_alert(session, alert_id)
    allowed = {AlertStatus.DRAFT, AlertStatus.PENDING_APPROVAL, AlertStatus.SCHEDULED}
    if alert.status not in allowed:
        raise AlertError(f"alert {alert_id} is {alert.status} and can no longer be withdrawn")
    alert.status = AlertStatus.CANCELLED
    audit_alert(session, "alert.discard", alert.id, actor_id=actor_id)
    return alert


async def set_paused(
    session: AsyncSession, alert_id: int | None, *, paused: bool, actor_id: int | None
) -> list[Alert]:
    """Pause (or resume) one broadcast, or every running (paused) one when alert_id is None."""
    source = AlertStatus.SENDING if paused else AlertStatus.PAUSED
    target = AlertStatus.PAUSED if paused else AlertStatus.SENDING
    stmt = select(Alert).where(Alert.status == source)
    if alert_id is not None:
        stmt = stmt.where(Alert.id == alert_id)
    alerts = list((await session.scalars(stmt)).all())
    for alert in alerts:
        alert.status = target
        audit_alert(
            session, "alert.pause" if paused else "alert.resume", alert.id, actor_id=actor_id
        )
    return alerts


async def derive(
    session: AsyncSession,
    original_id: int,
    kind: AlertKind,
    *,
    author_id: int | None,
    content: dict[str, dict[str, str]] | None = None,
    severity: str | None = None,
    expires_at: datetime | None = None,
    source: str = "wizard",
    identifier: str | None = None,
    cap_xml: str | None = None,
) -> Alert:
    """A draft UPDATE or CANCEL of a sent alert; it goes to the original's recipients."""
    if kind == AlertKind.ALERT:
        raise AlertError("derive makes updates and cancellations only")
    original = await get_alert(session, original_id)
    if original.kind != AlertKind.ALERT:
        raise AlertError("only an original alert can be updated or cancelled")
    if original.status not in {AlertStatus.SENDING, AlertStatus.SENT, AlertStatus.PAUSED}:
        raise AlertError(f"alert {original_id} was not sent ({original.status})")
    draft = _draft_of(original)
    for lang, texts in (content or {}).items():
        draft.content.setdefault(lang, {}).update({k: v for k, v in texts.items() if v})
    draft.severity = severity or original.severity
    draft.expires_at = None if kind == AlertKind.CANCEL else (expires_at or original.expires_at)
    return await create_draft(
        session,
        draft,
        author_id=author_id,
        source=source,
        kind=kind,
        references_id=original.id,
        identifier=identifier,
        cap_xml=cap_xml,
    )


async def staff_ids(session: AsyncSession, extra_admins: Sequence[int] = ()) -> list[int]:
    """Everyone who may approve alerts: staff and admins."""
    rows = await session.scalars(
        select(StaffRole.user_id).where(StaffRole.role.in_(ALERT_ROLES)).distinct()
    )
    return sorted({*rows, *extra_admins})


async def alert_counts(session: AsyncSession, alert_id: int) -> dict[str, int]:
    """Deliveries of an alert per state."""
    rows = await session.execute(
        select(AlertDelivery.state, func.count())
        .where(AlertDelivery.alert_id == alert_id)
        .group_by(AlertDelivery.state)
    )
    counts = {s.value: 0 for s in DeliveryState}
    counts.update({state: int(n) for state, n in rows.all()})
    return counts


async def expire_overdue(session: AsyncSession) -> list[int]:
    """Withdraw scheduled alerts whose expiry passed before they could start."""
    now = utcnow()
    ids = list(
        (
            await session.scalars(
                select(Alert.id).where(
                    Alert.status.in_([AlertStatus.SCHEDULED, AlertStatus.PENDING_APPROVAL]),
                    Alert.expires_at.is_not(None),
                    Alert.expires_at <= now,
                )
            )
        ).all()
    )
    if ids:
        await session.execute(
            update(Alert).where(Alert.id.in_(ids)).values(status=AlertStatus.CANCELLED)
        )
        for alert_id in ids:
            audit_alert(session, "alert.expired", alert_id, actor_id=None)
    return ids


# ------------------------------------------------------------------------------ rendering


def pick_language(content: dict[str, Any], lang: str, default: str) -> str:
    """The content language to show a citizen: theirs, else the default, else any."""
    base = lang.lower().replace("_", "-").split("-")[0]
    for candidate in (base, default):
        if (content.get(candidate) or {}).get("headline"):
            return candidate
    for candidate, texts in content.items():
        if (texts or {}).get("headline"):
            return str(candidate)
    return default


def render_for(
    alert: Alert,
    lang: str,
    catalog: Catalog,
    default_lang: str,
    all_label: dict[str, str] | None = None,
    *,
    tz: tzinfo | None = None,
) -> RenderedAlert:
    """Exactly what a citizen with language lang receives for this alert (times in tz, the
    bureau's zone; UTC when not given)."""
    show = pick_language(alert.content, lang, default_lang)
    texts = alert.content.get(show) or {}
    labels = all_label or {"en": "All districts", "zh": "全市"}
    kind = AlertKind(alert.kind).value
    return render_alert(
        headline=texts.get("headline") or "",
        description=texts.get("description"),
        instruction=None if kind == "cancel" else texts.get("instruction"),
        severity=alert.severity,
        urgency=alert.urgency,
        category_name=catalog.category_name(alert.category, show),
        areas_text=catalog.districts_text(
            list(alert.districts), show, labels.get(show, labels["en"])
        ),
        sent_at=alert.created_at.astimezone(UTC),
        expires_at=alert.expires_at,
        lang=show,
        kind=kind,  # type: ignore[arg-type]
        tz=tz or UTC,
    )


_DURATION = re.compile(r"^\s*(\d{1,4})\s*(m|min|h|d)\s*$", re.IGNORECASE)


def parse_when(text: str, now: datetime | None = None, tz: tzinfo | None = None) -> datetime | None:
    """A future time (in UTC) from '90m', '6h', '2d' or 'YYYY-MM-DD HH:MM' read in tz (the
    bureau's zone; UTC when not given); None if unreadable."""
    now = now or utcnow()
    match = _DURATION.match(text)
    if match:
        amount, unit = int(match.group(1)), match.group(2).lower()
        minutes = {"m": 1, "min": 1, "h": 60, "d": 1440}[unit] * amount
        return now + timedelta(minutes=minutes) if minutes > 0 else None
    try:
        value = datetime.fromisoformat(text.strip().replace("T", " "))
    except ValueError:
        return None
    try:
        if value.tzinfo is None:
            value = value.replace(tzinfo=tz or UTC)
        value = value.astimezone(UTC)
    except OverflowError:
        return None
    return value if value > now else None

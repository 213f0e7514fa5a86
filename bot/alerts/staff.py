"""What the communications staff do with alerts through the bot, one call a step.

The staff's handlers (`handlers.alerts_staff`) read the update, call one of these and say what
it returns; the rules (whose draft may be sent or discarded, what an Approve press did, which
alerts may be updated or cancelled) and the queries are here. Nothing here talks to Telegram.
Like `service`, these leave the commit to the caller, except where noted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from bot.alerts import service
from bot.alerts.catalog import Catalog
from bot.db import repo
from bot.db.models import Alert, AlertKind, AlertStatus
from bot.i18n import Locales

# What an original alert is in once people have (or are getting) it: it may be updated or
# cancelled, by a notice to those people.
SENT = (AlertStatus.SENDING, AlertStatus.SENT, AlertStatus.PAUSED)


# ------------------------------------------------------------------------------ the wizard


def requires_approval(alert: Alert, approval_severities: Sequence[str]) -> bool:
    """Whether sending this alert waits for a second staff member (a cancellation never does)."""
    return (
        service.needs_approval(alert.severity, approval_severities)
        and alert.kind != AlertKind.CANCEL
    )


async def recipients(session: AsyncSession, alert: Alert) -> int:
    """How many citizens an alert would reach now: its subscribers, or for an update or a
    cancellation, the people who received the original."""
    if alert.kind == AlertKind.ALERT:
        return await service.count_recipients(session, alert.category, list(alert.districts))
    return await service.count_reply_recipients(session, alert.references_id or 0)


async def compose(
    session: AsyncSession,
    draft: service.AlertDraft,
    *,
    catalog: Catalog,
    default_lang: str,
    author_id: int,
) -> Alert:
    """The wizard's answers stored as a draft, or AlertError naming the first invalid one."""
    draft.check(catalog, default_lang)
    return await service.create_draft(session, draft, author_id=author_id)


async def discard_own_draft(session: AsyncSession, alert_id: object, actor_id: int) -> None:
    """The wizard is cancelled: its draft (alert_id, as the wizard kept it, if any) is
    withdrawn while it still is this staff member's unsent draft."""
    if not isinstance(alert_id, int):
        return
    alert = await session.get(Alert, alert_id)
    if alert is not None and alert.status == AlertStatus.DRAFT and alert.created_by == actor_id:
        await service.discard(session, alert_id, actor_id=actor_id)


async def own_draft(session: AsyncSession, alert_id: int, author_id: int) -> Alert | None:
    """The draft its author presses Send for; None when it is no longer a draft (or not theirs)."""
    alert = await service.get_alert(session, alert_id)
    if alert.status != AlertStatus.DRAFT or alert.created_by != author_id:
        return None
    return alert


# ------------------------------------------------------------------------------ approval


@dataclass(frozen=True)
class ApprovalRequest:
    """Who to ask to approve an alert, and what to tell them."""

    recipients: int  # citizens it would reach
    colleagues: list[tuple[int, str]]  # everyone who may approve but its author, with language


async def request_approval(
    session: AsyncSession,
    alert: Alert,
    *,
    actor_id: int,
    approval_severities: Sequence[str],
    admin_ids: Sequence[int],
    locales: Locales,
) -> ApprovalRequest:
    """Submit a draft that needs a second person; it waits for one of the colleagues named."""
    await service.submit(
        session, alert.id, actor_id=actor_id, approval_severities=approval_severities
    )
    count = await recipients(session, alert)
    colleagues = [
        (user_id, await locales.for_user(session, user_id))
        for user_id in await service.staff_ids(session, admin_ids)
        if user_id != alert.created_by
    ]
    return ApprovalRequest(count, colleagues)


def track(alert: Alert, progress: tuple[int, int]) -> None:
    """The staff member's message (chat, message id) that shows how the alert is doing."""
    alert.progress_chat_id, alert.progress_message_id = progress


# Why an Approve or Reject press changed nothing: the alert was withdrawn, or replaced by an
# update before it was sent, or a colleague rejected or approved it first, or it is gone.
Stale = Literal["replaced", "withdrawn", "rejected", "approved", "gone"]


@dataclass(frozen=True)
class Decision:
    """What an Approve or Reject press did."""

    alert: Alert
    own: bool = False  # the author pressed Approve on their own alert: refused
    stale: Stale | None = None  # nothing changed, and why
    replaced_by: int | None = None  # stale "replaced": the alert that took its place
    approver: str | int | None = None  # stale "approved": who (display name, else id)
    author_lang: str | None = None  # decided: the language to tell the author in

    @property
    def settled(self) -> bool:
        """No longer waiting for approval: every Approve/Reject button for it is stale."""
        return self.alert.status != AlertStatus.PENDING_APPROVAL


async def decide(
    session: AsyncSession, alert_id: int, *, approve: bool, actor_id: int, locales: Locales
) -> Decision | None:
    """A second staff member approves or rejects an alert (None: there is no such alert).

    The author can never approve their own: that refusal is audited and committed here, before
    the handler answers, though nothing else changes.
    """
    alert = await session.get(Alert, alert_id)
    if alert is None:
        return None
    try:
        if approve:
            await service.approve(session, alert.id, approver_id=actor_id)
        else:
            await service.reject(session, alert.id, actor_id=actor_id)
    except service.AlertError:
        own = alert.created_by == actor_id and alert.status == AlertStatus.PENDING_APPROVAL
        if own and approve:
            await session.commit()
            return Decision(alert, own=True)
        return await _stale(session, alert)
    author_lang = await locales.for_user(session, alert.created_by) if alert.created_by else None
    return Decision(alert, author_lang=author_lang)


async def _stale(session: AsyncSession, alert: Alert) -> Decision:
    """Why an alert no longer waits for approval, for whoever presses a stale button."""
    if alert.status == AlertStatus.CANCELLED:
        newer = await service.replacement_of(session, alert.id)
        stale: Stale = "withdrawn" if newer is None else "replaced"
        return Decision(alert, stale=stale, replaced_by=newer)
    if alert.status == AlertStatus.REJECTED:
        return Decision(alert, stale="rejected")
    if alert.approved_by is not None:
        name = await repo.display_name(session, alert.approved_by)
        return Decision(alert, stale="approved", approver=name or alert.approved_by)
    return Decision(alert, stale="gone")


async def pending(session: AsyncSession) -> list[tuple[Alert, str | None]]:
    """Alerts waiting for approval, oldest first, each with its author's display name."""
    return [
        (alert, await repo.display_name(session, alert.created_by))
        for alert in await service.pending_approval(session)
    ]


# ------------------------------------------------------------------------------ update / cancel


async def sent_original(session: AsyncSession, alert_id: int) -> Alert | None:
    """The original alert people received (or are receiving), the only kind updated or
    cancelled; None for any other id."""
    alert = await session.get(Alert, alert_id)
    if alert is None or alert.kind != AlertKind.ALERT or alert.status not in SENT:
        return None
    return alert


async def cancel_reach(session: AsyncSession, alert_id: int) -> int | None:
    """How many citizens a cancellation of this alert would reach; None when it cannot be
    cancelled."""
    if await sent_original(session, alert_id) is None:
        return None
    return await service.count_reply_recipients(session, alert_id)


async def draft_cancellation(session: AsyncSession, alert_id: int, author_id: int) -> Alert | None:
    """A draft CANCEL notice of a sent alert, to submit; None when it cannot be cancelled."""
    if await sent_original(session, alert_id) is None:
        return None
    return await service.derive(session, alert_id, AlertKind.CANCEL, author_id=author_id)

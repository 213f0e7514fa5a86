"""The data model: citizens, staff, cases, relayed messages, alerts and the audit trail.

Telegram ids are BigInteger (user ids exceed 2**31, supergroup ids are -100…). Every timestamp is
timezone-aware UTC, also on SQLite, through `UTCDateTime`. States are short strings checked by
the database, so a typo in code fails loudly instead of storing a state nobody handles.
"""

from __future__ import annotations

import enum
import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def random_id() -> int:
    """A row id chosen here, not by the database: known before the row is written (it goes
    into buttons sent first), unique across processes without asking anyone (63 random bits:
    a collision is about one in 10^5 after ten million rows)."""
    return secrets.randbits(63) or 1


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC; returns aware datetimes (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with the constraint naming convention alembic relies on."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


def _in(column: str, values: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class Role(enum.StrEnum):
    OFFICER = "officer"
    STAFF = "staff"  # communications staff: alerts
    ADMIN = "admin"


# Who may compose, approve and manage alerts (the staff's commands and menus).
ALERT_ROLES = frozenset({Role.STAFF, Role.ADMIN})


class CasePriority(enum.StrEnum):
    URGENT = "urgent"
    NORMAL = "normal"


class CaseStatus(enum.StrEnum):
    OPEN = "open"  # waiting for an officer
    CLAIMED = "claimed"
    CLOSED = "closed"


class CaseReason(enum.StrEnum):
    CRISIS = "crisis"
    EMERGENCY = "emergency"
    HUMAN = "human"
    REPORT = "report"  # a citizen report (later issue) is a case too


class Direction(enum.StrEnum):
    CITIZEN = "citizen"  # citizen -> bot
    BOT = "bot"  # automatic reply
    OFFICER = "officer"  # officer -> citizen, sent as the bot
    NOTE = "note"  # internal officer note, never relayed


class RelayState(enum.StrEnum):
    NONE = "none"  # nothing to relay
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class AlertStatus(enum.StrEnum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"  # withdrawn before or during sending
    REJECTED = "rejected"


class AlertKind(enum.StrEnum):
    ALERT = "alert"
    UPDATE = "update"
    CANCEL = "cancel"


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # claimed by a worker; may have reached Telegram
    SENT = "sent"
    BLOCKED = "blocked"  # 403 / chat not found: citizen unreachable
    FAILED = "failed"


class Citizen(Base):
    """A person who wrote to the bot. The primary key is their Telegram user id."""

    __tablename__ = "citizens"
    __table_args__ = (CheckConstraint("id > 0", name="positive_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    first_name: Mapped[str] = mapped_column(String(128), default="")
    last_name: Mapped[str | None] = mapped_column(String(128))
    username: Mapped[str | None] = mapped_column(String(64))
    telegram_language: Mapped[str | None] = mapped_column(String(16))
    language: Mapped[str | None] = mapped_column(String(8))  # chosen with /language
    blocked_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    blocked_at: Mapped[datetime | None]
    banned: Mapped[bool] = mapped_column(Boolean, default=False)
    banned_at: Mapped[datetime | None]
    ban_notified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)

    cases: Mapped[list[Case]] = relationship(back_populates="citizen", passive_deletes=True)
    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="citizen", passive_deletes=True
    )

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or str(self.id)


class StaffRole(Base):
    """One role of one staff member; a person may hold several roles."""

    __tablename__ = "staff_roles"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(128))
    on_duty: Mapped[bool] = mapped_column(Boolean, default=False)
    added_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (CheckConstraint(_in("role", Role), name="role"),)


class Case(Base):
    """An escalated conversation handled by officers in one forum topic."""

    __tablename__ = "cases"
    __table_args__ = (
        CheckConstraint(_in("priority", CasePriority), name="priority"),
        CheckConstraint(_in("status", CaseStatus), name="status"),
        CheckConstraint(_in("reason", CaseReason), name="reason"),
        CheckConstraint("rating IS NULL OR (rating BETWEEN 1 AND 5)", name="rating"),
        Index("ix_cases_status_priority_opened", "status", "priority", "opened_at"),
        Index("ix_cases_citizen_status", "citizen_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    citizen_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("citizens.id", ondelete="CASCADE")
    )
    priority: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=CaseStatus.OPEN)
    reason: Mapped[str] = mapped_column(String(16))
    signals: Mapped[list[Any]] = mapped_column(default=list)
    language: Mapped[str | None] = mapped_column(String(8))
    forum_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    forum_topic_id: Mapped[int | None] = mapped_column(BigInteger)
    topic_name: Mapped[str | None] = mapped_column(String(128))
    delivered_at: Mapped[datetime | None]  # the card reached the officers' forum
    delivery_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_delivery_error: Mapped[str | None] = mapped_column(Text)
    assigned_officer_id: Mapped[int | None] = mapped_column(BigInteger)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    last_paged_at: Mapped[datetime | None]
    page_count: Mapped[int] = mapped_column(Integer, default=0)
    escalated_at: Mapped[datetime | None]
    wait_notice_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[int | None] = mapped_column(BigInteger)
    close_note: Mapped[str | None] = mapped_column(Text)
    rating: Mapped[int | None] = mapped_column(Integer)
    reopened_count: Mapped[int] = mapped_column(Integer, default=0)

    citizen: Mapped[Citizen] = relationship(back_populates="cases")


class Message(Base):
    """One message of a conversation: the transcript, and the relay outbox for cases."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_in("direction", Direction), name="direction"),
        CheckConstraint(_in("relay_state", RelayState), name="relay_state"),
        Index("ix_messages_citizen_created", "citizen_id", "created_at"),
        Index("ix_messages_relay_state", "relay_state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    citizen_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("citizens.id", ondelete="CASCADE")
    )
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(16))
    content_type: Mapped[str] = mapped_column(String(32), default="text")
    text: Mapped[str | None] = mapped_column(Text)
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)
    staff_user_id: Mapped[int | None] = mapped_column(BigInteger)  # which officer, for audit
    relay_state: Mapped[str] = mapped_column(String(16), default=RelayState.NONE)
    relay_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MessagePair(Base):
    """A citizen's message and its copy in the case topic (either direction), for edits."""

    __tablename__ = "message_pairs"
    __table_args__ = (
        UniqueConstraint("citizen_chat_id", "citizen_message_id"),
        UniqueConstraint("topic_chat_id", "topic_message_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    citizen_chat_id: Mapped[int] = mapped_column(BigInteger)
    citizen_message_id: Mapped[int] = mapped_column(BigInteger)
    topic_chat_id: Mapped[int] = mapped_column(BigInteger)
    topic_message_id: Mapped[int] = mapped_column(BigInteger)
    direction: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Subscription(Base):
    """A citizen wants alerts of one category in one district ('*' = every district)."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("citizen_id", "category", "district"),
        Index("ix_subscriptions_category_district", "category", "district"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    citizen_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("citizens.id", ondelete="CASCADE")
    )
    category: Mapped[str] = mapped_column(String(64))
    district: Mapped[str] = mapped_column(String(64), default="*")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    citizen: Mapped[Citizen] = relationship(back_populates="subscriptions")


class Alert(Base):
    """A public-safety alert (or an update / cancellation of one), CAP 1.2 shaped."""

    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(_in("status", AlertStatus), name="status"),
        CheckConstraint(_in("kind", AlertKind), name="kind"),
        Index("ix_alerts_status_scheduled", "status", "scheduled_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    identifier: Mapped[str] = mapped_column(String(255), unique=True)  # CAP identifier
    kind: Mapped[str] = mapped_column(String(16), default=AlertKind.ALERT)
    references_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"))
    status: Mapped[str] = mapped_column(String(24), default=AlertStatus.DRAFT)
    category: Mapped[str] = mapped_column(String(64))
    districts: Mapped[list[Any]] = mapped_column(default=list)  # empty = all districts
    severity: Mapped[str] = mapped_column(String(16))
    urgency: Mapped[str] = mapped_column(String(16), default="Unknown")
    certainty: Mapped[str] = mapped_column(String(16), default="Unknown")
    # {"en": {"headline": …, "description": …, "instruction": …}, "zh": {…}}
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str] = mapped_column(String(16), default="wizard")  # wizard | cap | api
    cap_xml: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    approved_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    approved_at: Mapped[datetime | None]
    scheduled_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    total_recipients: Mapped[int] = mapped_column(Integer, default=0)
    progress_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    progress_message_id: Mapped[int | None] = mapped_column(BigInteger)


class AlertDelivery(Base):
    """One alert to one citizen; the state machine that makes broadcasts resumable."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "citizen_id"),
        CheckConstraint(_in("state", DeliveryState), name="state"),
        Index("ix_alert_deliveries_alert_state", "alert_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    citizen_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("citizens.id", ondelete="CASCADE")
    )
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]


class AuditLog(Base):
    """Append-only record of every staff action (triggers forbid UPDATE and DELETE)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_actor_at", "actor_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(BigInteger)  # None: the system or the CLI
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ProcessedUpdate(Base):
    """Telegram update ids already handled, so a webhook retry is not handled twice."""

    __tablename__ = "processed_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    processed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class InboxUpdate(Base):
    """An update received but not yet handled: the durable inbox both intake modes write first.

    A row is written (or spooled to disk while the database is away) before Telegram's delivery
    is acknowledged, and deleted in the same transaction that records the id in
    `processed_updates` once the dispatcher has handled it. `lease_until` keeps the row to the
    process working on it (`owner`); an expired lease (the process died) lets any process take
    it over.
    """

    __tablename__ = "inbox"
    __table_args__ = (
        Index("ix_inbox_lease", "parked", "lease_until"),
        Index("ix_inbox_chat", "chat_id", "update_id"),
    )

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    parked: Mapped[bool] = mapped_column(Boolean, default=False)
    # The process holding the lease (None: released, to be taken over); another process keeps
    # one chat's order by not handling a newer update of the chat while this one is held.
    owner: Mapped[str | None] = mapped_column(String(128))


class WorkClaim(Base):
    """A claim on a piece of work (a case's delivery, its re-pages) by one process, so several
    processes never do it at once; a dead process's claim is taken over when `until` passes.
    See `bot.claims`."""

    __tablename__ = "work_claims"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    until: Mapped[datetime]


# The work_claims row whose `until` says when the next retention pass is due (bot.retention
# writes it, the metrics read it).
RETENTION_NEXT = "retention:next"


class UrgentReplyState(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    UNREACHABLE = "unreachable"  # blocked, deactivated, chat gone: the topic is told


class UrgentReply(Base):
    """The crisis or emergency reply owed to a citizen for one update: delivered, not attempted.

    One row per update (unique), so the reply decided on arrival by the rules and the one the
    handler decides later are the same reply, sent once. Retried with backoff until Telegram
    accepts it or the citizen cannot be reached.
    """

    __tablename__ = "urgent_replies"
    __table_args__ = (
        CheckConstraint(_in("state", UrgentReplyState), name="state"),
        Index("ix_urgent_replies_state", "state"),
    )

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    level: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=UrgentReplyState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    # An unreachable citizen's topic has been told (the case may open after the failure).
    noticed: Mapped[bool] = mapped_column(Boolean, default=False)
    # The process sending it (or telling the topic it failed) and until when: with several
    # processes only one sends, and a dead one's claim runs out.
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None]


class FaqQuery(Base):
    """A question the FAQ saw: for feedback, gaps and calibration."""

    __tablename__ = "faq_queries"
    __table_args__ = (Index("ix_faq_queries_outcome_created", "outcome", "created_at"),)

    # Chosen by `random_id` when the question is answered (the buttons carry it), so the row
    # is written with the update's last commit, not before the answer goes out.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
        default=random_id,
    )
    citizen_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("citizens.id", ondelete="SET NULL")
    )
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8))
    outcome: Mapped[str] = mapped_column(String(16))  # answer | suggest | none | throttled
    entry_id: Mapped[str | None] = mapped_column(String(128))
    score: Mapped[float | None]
    feedback: Mapped[str | None] = mapped_column(String(8))  # up | down
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FsmRecord(Base):
    """aiogram FSM state when Redis is not configured, so wizards survive a restart."""

    __tablename__ = "fsm_records"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

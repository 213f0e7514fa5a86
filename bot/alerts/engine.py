"""The durable broadcast engine: one row per delivery, claimed in batches, sent at the limit.

Guarantee (documented in the README): every recipient is materialised as an
`alert_deliveries` row before the first send, and a row leaves `pending` only for a final
state (`sent`, `blocked`, `failed`) written after Telegram answered. Nothing is lost: a
process that dies leaves its claimed rows in `sending`, and they go back to `pending` when a
restarted worker notices their owner is gone (same host, dead process) or their lease ran
out. The price is at-least-once for those rows: a message that reached Telegram but whose
`sent` state was not yet written is sent again. Results are written every `flush_interval`
seconds or as soon as `flush_max` wait, so a crash can repeat about `flush_max +
concurrency` messages plus what the database write in progress holds;
benchmarks/alerts_crash.py measures it.

Memory does not grow with the number of subscribers: recipients are materialised with one
`INSERT … SELECT` inside the database and sent in claimed batches of `batch_size`.

On PostgreSQL several processes share a broadcast: each claims batches with
`SELECT … FOR UPDATE SKIP LOCKED`. SQLite has one writer, so one worker sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, cast

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
)
from sqlalchemy import Select, Table, bindparam, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import metrics
from bot.alerts import service
from bot.alerts.catalog import Catalog
from bot.alerts.ratelimit import RateLimiter
from bot.alerts.transport import BroadcastTransport, PreparedMessage
from bot.db import repo
from bot.db.models import (
    Alert,
    AlertDelivery,
    AlertKind,
    AlertStatus,
    Citizen,
    DeliveryState,
    Subscription,
    utcnow,
)

log = logging.getLogger(__name__)

HOST = socket.gethostname()
# Worker ids of this process that are still running; a claim by an id of this process that
# is not here belongs to an application instance that was stopped (a restart in-process).
_LIVE: set[str] = set()
_DT = cast(Table, AlertDelivery.__table__)


@dataclass
class EngineConfig:
    """Tuning of the broadcast engine (the defaults suit Telegram's free 30/s)."""

    concurrency: int = 16
    batch_size: int = 200
    paid_broadcast: bool = False
    max_attempts: int = 5
    backoff_base: float = 2.0
    backoff_max: float = 300.0
    flush_interval: float = 0.25
    flush_max: int = 32  # write results sooner when this many wait: fewer repeats after a crash
    progress_interval: float = 3.0
    lease_seconds: float = 120.0
    poll_interval: float = 1.0
    max_retry_after_per_message: int = 20


@dataclass
class Progress:
    """A broadcast's counts, as shown to staff."""

    alert_id: int
    total: int
    counts: dict[str, int]
    elapsed: float
    rate: float
    done: bool = False
    status: str = ""

    @property
    def finished(self) -> int:
        """Deliveries in a final state."""
        return sum(self.counts.get(s, 0) for s in ("sent", "blocked", "failed"))

    @property
    def eta_seconds(self) -> float | None:
        """Seconds until done at the current rate."""
        left = self.total - self.finished
        if self.rate <= 0:
            return None
        return left / self.rate


ProgressSink = Callable[[Alert, Progress], Awaitable[None]]


@dataclass
class RunStats:
    """What one worker did in one run (benchmarks and tests read it)."""

    sent: int = 0
    blocked: int = 0
    failed: int = 0
    retried: int = 0
    rate_limited: int = 0
    released: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


@dataclass
class _Item:
    delivery_id: int
    citizen_id: int
    attempts: int
    lang: str
    reply_to: int | None


@dataclass
class _Result:
    item: _Item
    state: str  # sent | blocked | failed | retry | release
    message_id: int | None = None
    error: str | None = None
    at: datetime = field(default_factory=utcnow)


def new_worker_id() -> str:
    """host:pid:random, so a restarted worker can tell whose claims are orphaned."""
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_dead(worker: str) -> bool:
    host, _, rest = worker.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return worker not in _LIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Broadcaster:
    """Materialises, claims, sends and records the deliveries of alerts."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bot: Bot,
        limiter: RateLimiter,
        catalog: Catalog,
        default_lang: str,
        config: EngineConfig | None = None,
        *,
        on_progress: ProgressSink | None = None,
        worker_id: str | None = None,
        tz: tzinfo | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.bot = bot
        self.limiter = limiter
        self.catalog = catalog
        self.default_lang = default_lang
        self.config = config or EngineConfig()
        self.on_progress = on_progress
        self.worker_id = worker_id or new_worker_id()
        self.tz = tz  # the bureau's zone: the times in the message
        self.transport = BroadcastTransport(bot, paid_broadcast=self.config.paid_broadcast)
        self._running: dict[int, asyncio.Task[RunStats]] = {}
        _LIVE.add(self.worker_id)

    @property
    def dialect(self) -> str:
        bind = self.sessionmaker.kw.get("bind")
        return bind.dialect.name if bind is not None else "sqlite"

    def close(self) -> None:
        """Forget this worker id (its claims become orphans that a restart recovers)."""
        _LIVE.discard(self.worker_id)

    # -------------------------------------------------------------------------- lifecycle

    async def start_due(self) -> list[int]:
        """Start scheduled alerts whose time has come; returns their ids."""
        started: list[int] = []
        async with self.sessionmaker() as session:
            await service.expire_overdue(session)
            ids = (
                await session.scalars(
                    select(Alert.id)
                    .where(Alert.status == AlertStatus.SCHEDULED, Alert.scheduled_at <= utcnow())
                    .order_by(Alert.scheduled_at, Alert.id)
                )
            ).all()
            await session.commit()
        for alert_id in ids:
            if await self.materialise(alert_id):
                started.append(alert_id)
        return started

    async def materialise(self, alert_id: int) -> bool:
        """Move a scheduled alert to sending and create its delivery rows, in one transaction.

        Returns False when another process did it first (the status check is atomic), or when
        it is a cancellation of an alert whose messages are still in flight (the cancellation
        stopped it; its last messages are about to be recorded): those recipients must be
        counted in, so it starts at a later tick.
        """
        async with self.sessionmaker() as session:
            if await self._original_in_flight(session, alert_id):
                await session.rollback()
                return False
            claimed = await session.execute(
                update(Alert)
                .where(Alert.id == alert_id, Alert.status == AlertStatus.SCHEDULED)
                .values(status=AlertStatus.SENDING, started_at=utcnow())
            )
            if not claimed.rowcount:  # type: ignore[attr-defined]
                await session.rollback()
                return False
            alert = await service.get_alert(session, alert_id)
            if alert.kind == AlertKind.ALERT:
                source: Select[Any, int] = service.recipients_select(
                    alert.id, alert.category, alert.districts
                )
                source = source.with_only_columns(
                    text(str(alert.id)), Subscription.citizen_id
                ).distinct()
            else:
                # Updates and cancellations go to whoever received the original, as replies.
                source = select(text(str(alert.id)), AlertDelivery.citizen_id).where(
                    AlertDelivery.alert_id == alert.references_id,
                    AlertDelivery.state == DeliveryState.SENT,
                )
            stmt = insert(AlertDelivery).from_select(["alert_id", "citizen_id"], source)
            await session.execute(stmt)
            total = await session.scalar(
                select(func.count()).where(AlertDelivery.alert_id == alert.id)
            )
            alert.total_recipients = int(total or 0)
            service.audit_alert(
                session, "alert.start", alert.id, actor_id=None, recipients=alert.total_recipients
            )
            await session.commit()
        log.info("alert %s: %s recipients", alert_id, total)
        return True

    async def _original_in_flight(self, session: AsyncSession, alert_id: int) -> bool:
        """Whether alert_id cancels an alert with deliveries claimed by a live sender (a claim
        older than the lease is a dead sender's and is not waited for). Updates do not wait:
        an alert still being sent would hold them back until its very end."""
        original = await session.scalar(
            select(Alert.references_id).where(
                Alert.id == alert_id,
                Alert.kind == AlertKind.CANCEL,
                Alert.references_id.is_not(None),
            )
        )
        if original is None:
            return False
        cutoff = utcnow() - timedelta(seconds=self.config.lease_seconds)
        busy = await session.scalar(
            select(func.count()).where(
                AlertDelivery.alert_id == original,
                AlertDelivery.state == DeliveryState.SENDING,
                AlertDelivery.claimed_at > cutoff,
            )
        )
        return bool(busy)

    async def recover(self, alert_id: int) -> int:
        """Return orphaned claims (dead owner or lease expired) to pending; returns how many."""
        cutoff = utcnow() - timedelta(seconds=self.config.lease_seconds)
        async with self.sessionmaker() as session:
            owners = (
                await session.scalars(
                    select(AlertDelivery.claimed_by)
                    .where(
                        AlertDelivery.alert_id == alert_id,
                        AlertDelivery.state == DeliveryState.SENDING,
                    )
                    .distinct()
                )
            ).all()
            dead = [o for o in owners if o and o != self.worker_id and _owner_dead(o)]
            stmt = (
                update(AlertDelivery)
                .where(
                    AlertDelivery.alert_id == alert_id,
                    AlertDelivery.state == DeliveryState.SENDING,
                    AlertDelivery.claimed_by != self.worker_id,
                    (AlertDelivery.claimed_at < cutoff) | AlertDelivery.claimed_by.in_(dead),
                )
                .values(state=DeliveryState.PENDING, claimed_by=None, claimed_at=None)
            )
            result = await session.execute(stmt)
            await session.commit()
        count = int(result.rowcount or 0)  # type: ignore[attr-defined]
        if count:
            log.warning("alert %s: %d orphaned deliveries returned to pending", alert_id, count)
        return count

    def running(self) -> set[int]:
        """Ids of alerts this worker is sending now."""
        return {a for a, t in self._running.items() if not t.done()}

    async def tick(self) -> None:
        """One scheduler step: start due alerts, join every broadcast that is sending."""
        await self.start_due()
        async with self.sessionmaker() as session:
            sending = (
                await session.scalars(select(Alert.id).where(Alert.status == AlertStatus.SENDING))
            ).all()
        for alert_id in sending:
            if alert_id not in self.running():
                self._running[alert_id] = asyncio.create_task(
                    self.run(alert_id), name=f"broadcast-{alert_id}"
                )

    async def serve(self) -> None:
        """Run the scheduler until cancelled; running broadcasts stop cleanly with it."""
        try:
            while True:
                try:
                    await self.tick()
                except Exception:
                    log.exception("alert scheduler step failed; retrying")
                await asyncio.sleep(self.config.poll_interval)
        finally:
            tasks = list(self._running.values())
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self.close()

    # -------------------------------------------------------------------------- sending

    async def run(self, alert_id: int) -> RunStats:
        """Send an alert's pending deliveries until none is left, it is paused, or expires."""
        stats = RunStats()
        await self.recover(alert_id)
        async with self.sessionmaker() as session:
            alert = await service.get_alert(session, alert_id)
        prepared: dict[str, PreparedMessage] = {}
        for lang in {*alert.content, self.default_lang}:
            prepared[lang] = self.transport.prepare(
                service.render_for(alert, lang, self.catalog, self.default_lang, tz=self.tz)
            )

        queue: asyncio.Queue[_Item | None] = asyncio.Queue(maxsize=self.config.batch_size * 2)
        results: list[_Result] = []
        stop = asyncio.Event()
        halt = asyncio.Event()  # paused, cancelled or expired: release what is queued
        wake = asyncio.Event()  # enough results wait: flush now
        progress_state = {"last": 0.0, "finished0": -1, "t0": time.monotonic()}

        async def producer() -> None:
            try:
                while not stop.is_set():
                    status = await self._status(alert_id)
                    if status != AlertStatus.SENDING:
                        halt.set()
                        break
                    if alert.expires_at is not None and utcnow() >= alert.expires_at:
                        halt.set()
                        await asyncio.shield(self._expire_pending(alert_id))
                        break
                    # A write cancelled half-way (shutdown) could leave SQLite's write lock held
                    # by a connection nobody finishes; the claim always completes instead.
                    batch = await asyncio.shield(self._claim(alert_id, alert.references_id))
                    if batch:
                        for item in batch:
                            await queue.put(item)
                        continue
                    if queue.qsize() == 0 and await self._nothing_left(alert_id, results):
                        break
                    await asyncio.sleep(min(self.config.poll_interval, 0.2))
            finally:
                stop.set()
                for _ in range(self.config.concurrency):
                    await queue.put(None)

        async def sender() -> None:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if halt.is_set():
                    results.append(_Result(item, "release"))
                    continue
                show = service.pick_language(alert.content, item.lang, self.default_lang)
                results.append(await self._send(item, prepared[show], stats))
                if len(results) >= self.config.flush_max:
                    wake.set()

        finishing = asyncio.Event()

        async def flusher() -> None:
            checked = time.monotonic()
            while not finishing.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.config.flush_interval)
                wake.clear()
                await self._flush(alert_id, results, stats)
                # /stop must not wait until the queued backlog is sent (20 s at 20/s).
                if time.monotonic() - checked >= 1.0:
                    checked = time.monotonic()
                    if await self._status(alert_id) != AlertStatus.SENDING:
                        halt.set()
                await self._report(alert_id, progress_state, done=False)

        flush_task = asyncio.create_task(flusher())
        senders = [asyncio.create_task(sender()) for _ in range(self.config.concurrency)]
        prod = asyncio.create_task(producer())
        try:
            await prod
            await asyncio.gather(*senders)
        finally:
            for task in (prod, *senders):
                task.cancel()
            # Never cancel the flusher mid-write: the results it holds would be lost and their
            # messages sent again after a restart. Let it finish its round instead.
            finishing.set()
            wake.set()
            with contextlib.suppress(Exception):
                await asyncio.shield(flush_task)
            # Items still queued were claimed but never sent: release them at once.
            while not queue.empty():
                leftover = queue.get_nowait()
                if leftover is not None:
                    results.append(_Result(leftover, "release"))
            await asyncio.shield(self._flush(alert_id, results, stats))
        await self._finish(alert_id, progress_state)
        return stats

    async def _status(self, alert_id: int) -> str | None:
        async with self.sessionmaker() as session:
            return await session.scalar(select(Alert.status).where(Alert.id == alert_id))

    async def _claim(self, alert_id: int, references_id: int | None) -> list[_Item]:
        now = utcnow()
        cfg = self.config
        async with self.sessionmaker() as session:
            pick = (
                select(AlertDelivery.id)
                .where(
                    AlertDelivery.alert_id == alert_id,
                    AlertDelivery.state == DeliveryState.PENDING,
                    (AlertDelivery.next_attempt_at.is_(None))
                    | (AlertDelivery.next_attempt_at <= now),
                )
                .order_by(AlertDelivery.id)
                .limit(cfg.batch_size)
            )
            if self.dialect == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            claimed = await session.execute(
                update(AlertDelivery)
                .where(AlertDelivery.id.in_(pick.scalar_subquery()))
                .values(state=DeliveryState.SENDING, claimed_by=self.worker_id, claimed_at=now)
                .returning(AlertDelivery.id, AlertDelivery.citizen_id, AlertDelivery.attempts)
                .execution_options(synchronize_session=False)
            )
            rows = claimed.all()
            if not rows:
                await session.commit()
                return []
            ids = [r[0] for r in rows]
            original = AlertDelivery.__table__.alias("original")
            info_stmt = (
                select(
                    AlertDelivery.id,
                    Citizen.language,
                    Citizen.telegram_language,
                    original.c.telegram_message_id if references_id else text("NULL"),
                )
                .join(Citizen, Citizen.id == AlertDelivery.citizen_id)
                .where(AlertDelivery.id.in_(ids))
            )
            if references_id:
                info_stmt = info_stmt.outerjoin(
                    original,
                    (original.c.alert_id == references_id)
                    & (original.c.citizen_id == AlertDelivery.citizen_id),
                )
            info = {
                r[0]: (r[1] or r[2] or self.default_lang, r[3])
                for r in await session.execute(info_stmt)
            }
            await session.commit()
        items = []
        for delivery_id, citizen_id, attempts in sorted(rows):
            lang, reply_to = info.get(delivery_id, (self.default_lang, None))
            items.append(_Item(delivery_id, citizen_id, attempts, lang, reply_to))
        return items

    async def _send(self, item: _Item, message: PreparedMessage, stats: RunStats) -> _Result:
        rate_limited = 0
        while True:
            metrics.LIMITER_WAIT.labels("broadcast").observe(await self.limiter.acquire())
            try:
                message_id = await self.transport.send(item.citizen_id, message, item.reply_to)
            except TelegramRetryAfter as exc:
                # Telegram is unhappy with all our traffic: everyone waits, then this retries.
                stats.rate_limited += 1
                rate_limited += 1
                await self.limiter.penalize(float(exc.retry_after))
                if rate_limited >= self.config.max_retry_after_per_message:
                    return self._retry(item, f"429 retry_after {exc.retry_after}", stats)
                continue
            except TelegramForbiddenError as exc:
                stats.blocked += 1
                return _Result(item, "blocked", error=f"403 {exc.message}")
            except TelegramBadRequest as exc:
                if any(m in exc.message.lower() for m in ("chat not found", "user not found")):
                    stats.blocked += 1
                    return _Result(item, "blocked", error=f"400 {exc.message}")
                stats.failed += 1
                return _Result(item, "failed", error=f"400 {exc.message}")
            except TelegramNotFound as exc:
                stats.failed += 1
                return _Result(item, "failed", error=f"404 {exc.message}")
            except (TelegramServerError, TelegramNetworkError, TimeoutError, OSError) as exc:
                return self._retry(item, f"{type(exc).__name__}: {exc}", stats)
            stats.sent += 1
            return _Result(item, "sent", message_id=message_id)

    def _retry(self, item: _Item, error: str, stats: RunStats) -> _Result:
        if item.attempts + 1 >= self.config.max_attempts:
            stats.failed += 1
            return _Result(item, "failed", error=f"gave up after {item.attempts + 1}: {error}")
        stats.retried += 1
        return _Result(item, "retry", error=error)

    async def _flush(self, alert_id: int, results: list[_Result], stats: RunStats) -> None:
        """Write the collected results in a few batched statements."""
        if not results:
            return
        batch = results[:]
        del results[: len(batch)]
        try:
            await self._write(batch, stats)
        except BaseException:
            results[:0] = batch  # not written: keep them for the next flush
            raise

    async def _write(self, batch: list[_Result], stats: RunStats) -> None:
        """One transaction with every result of the batch."""
        sent = [
            {"b_id": r.item.delivery_id, "b_mid": r.message_id, "b_at": r.at}
            for r in batch
            if r.state == "sent"
        ]
        final = [
            {"b_id": r.item.delivery_id, "b_state": r.state, "b_err": (r.error or "")[:500]}
            for r in batch
            if r.state in ("blocked", "failed")
        ]
        retry = [
            {
                "b_id": r.item.delivery_id,
                "b_err": (r.error or "")[:500],
                "b_next": r.at
                + timedelta(
                    seconds=min(
                        self.config.backoff_max, self.config.backoff_base ** (r.item.attempts + 1)
                    )
                ),
            }
            for r in batch
            if r.state == "retry"
        ]
        release = [{"b_id": r.item.delivery_id} for r in batch if r.state == "release"]
        stats.released += len(release)
        blocked_citizens = sorted({r.item.citizen_id for r in batch if r.state == "blocked"})
        mine = _DT.c.claimed_by == self.worker_id
        async with self.sessionmaker() as session:
            conn = await session.connection()
            # One executemany per kind of result, each row only if this worker still owns it.
            for rows, values in (
                (
                    sent,
                    {
                        "state": DeliveryState.SENT,
                        "telegram_message_id": bindparam("b_mid"),
                        "sent_at": bindparam("b_at"),
                        "attempts": _DT.c.attempts + 1,
                        "error": None,
                    },
                ),
                (
                    final,
                    {
                        "state": bindparam("b_state"),
                        "error": bindparam("b_err"),
                        "attempts": _DT.c.attempts + 1,
                    },
                ),
                (
                    retry,
                    {
                        "state": DeliveryState.PENDING,
                        "error": bindparam("b_err"),
                        "next_attempt_at": bindparam("b_next"),
                        "attempts": _DT.c.attempts + 1,
                        "claimed_by": None,
                    },
                ),
                (
                    release,
                    {"state": DeliveryState.PENDING, "claimed_by": None, "claimed_at": None},
                ),
            ):
                if rows:
                    await conn.execute(
                        update(_DT).where(_DT.c.id == bindparam("b_id"), mine).values(values),
                        rows,
                    )
            if blocked_citizens:
                # Unreachable citizens: stop counting them as subscribers.
                await repo.mark_unreachable(session, blocked_citizens)
                await session.execute(
                    delete(Subscription).where(Subscription.citizen_id.in_(blocked_citizens))
                )
            await session.commit()

    async def _expire_pending(self, alert_id: int) -> None:
        async with self.sessionmaker() as session:
            await session.execute(
                update(AlertDelivery)
                .where(
                    AlertDelivery.alert_id == alert_id,
                    AlertDelivery.state == DeliveryState.PENDING,
                )
                .values(state=DeliveryState.FAILED, error="expired before delivery")
            )
            await session.commit()

    async def _nothing_left(self, alert_id: int, results: list[_Result]) -> bool:
        """True when no delivery of the alert is pending or claimed (by anyone)."""
        if results:
            return False
        await asyncio.shield(self.recover(alert_id))
        async with self.sessionmaker() as session:
            left = await session.scalar(
                select(func.count()).where(
                    AlertDelivery.alert_id == alert_id,
                    AlertDelivery.state.in_([DeliveryState.PENDING, DeliveryState.SENDING]),
                )
            )
        return not left

    async def progress(self, alert_id: int, state: dict[str, float]) -> tuple[Alert, Progress]:
        """Counts, rate and ETA of a broadcast (rate measured since this worker started)."""
        async with self.sessionmaker() as session:
            alert = await service.get_alert(session, alert_id)
            counts = await service.alert_counts(session, alert_id)
        now = time.monotonic()
        finished = sum(counts[s] for s in ("sent", "blocked", "failed"))
        if state["finished0"] < 0:
            state["finished0"], state["t0"] = finished, now
        elapsed = max(now - state["t0"], 1e-6)
        rate = (finished - state["finished0"]) / elapsed
        total = max(alert.total_recipients, sum(counts.values()))
        return alert, Progress(alert_id, total, counts, elapsed, rate, status=alert.status)

    async def _report(self, alert_id: int, state: dict[str, float], *, done: bool) -> None:
        if self.on_progress is None:
            return
        now = time.monotonic()
        if not done and now - state["last"] < self.config.progress_interval:
            return
        state["last"] = now
        try:
            alert, progress = await self.progress(alert_id, state)
            progress.done = done
            await self.on_progress(alert, progress)
        except Exception:
            log.exception("alert %s: progress report failed", alert_id)

    async def _finish(self, alert_id: int, state: dict[str, float]) -> None:
        """Mark the alert sent once nothing is left; the worker that does it reports."""
        async with self.sessionmaker() as session:
            left = await session.scalar(
                select(func.count()).where(
                    AlertDelivery.alert_id == alert_id,
                    AlertDelivery.state.in_([DeliveryState.PENDING, DeliveryState.SENDING]),
                )
            )
            if left:
                await session.commit()
                await self._report(alert_id, state, done=False)
                return
            done = await session.execute(
                update(Alert)
                .where(Alert.id == alert_id, Alert.status == AlertStatus.SENDING)
                .values(status=AlertStatus.SENT, finished_at=utcnow())
            )
            if done.rowcount:  # type: ignore[attr-defined]
                counts = await service.alert_counts(session, alert_id)
                service.audit_alert(session, "alert.finish", alert_id, actor_id=None, **counts)
            await session.commit()
        if done.rowcount:  # type: ignore[attr-defined]
            await self._report(alert_id, state, done=True)

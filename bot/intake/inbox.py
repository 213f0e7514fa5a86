"""The inbox: keep updates on arrival, owe urgent replies, handle updates from the inbox.

See the package docstring for the guarantees.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.fsm.storage.base import BaseStorage, StorageKey
from aiogram.types import Message, Update
from aiogram.types.update import UpdateTypeLookupError
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import failpoints, metrics
from bot.aio import cancel_and_wait
from bot.claims import process_identity
from bot.config import IntakeSettings
from bot.db.models import (
    Case,
    CasePriority,
    CaseStatus,
    Citizen,
    InboxUpdate,
    ProcessedUpdate,
    UrgentReply,
    UrgentReplyState,
    utcnow,
)
from bot.i18n import Locales
from bot.intake.handled import InboxDone, leave_inbox
from bot.intake.replies import (
    SEND_WAIT_SECONDS,
    URGENT_REPLY_KEYS,
    UrgentReplies,
    insert_ignore,
)
from bot.intake.spool import Spool
from bot.triage import Triage, TriageResult

log = logging.getLogger(__name__)

# Workers that take only chats with an urgent update, so a crisis found while every ordinary
# worker waits on Telegram's send rate (a surge) is still handled at once.
URGENT_WORKERS = 4
# While updates are arriving (being kept and read by the rules, or more waiting at Telegram),
# ordinary handling waits, at most this long per update: in a surge the whole burst is kept and
# read first, so a crisis sent late in it is answered without waiting for the questions before
# it. Arrivals cost a fraction of handling, so the wait is short even for a large burst.
ARRIVALS_FIRST_MAX = 2.0
# Handling goes on this long after the last arrival was read: webhook requests come in waves
# (each waits for its commit), and the gap between two waves is no reason to start.
ARRIVALS_QUIET_AFTER = 0.05
# How often a chat whose older update another process holds is looked at again.
FOREIGN_POLL_SECONDS = 0.1


def citizen_text(update: Update) -> tuple[Message | None, str]:
    """The private message or edit an update carries, and its text to triage ("" if none)."""
    message = update.message or update.edited_message
    if message is None or message.chat.type != "private":
        return None, ""
    text = message.text or message.caption or ""
    if message.text is not None and text.startswith("/"):
        return message, ""
    return message, text


_NUL_IN_JSON = "\\u0000"


def _without_nul(value: Any) -> Any:
    """``value`` (decoded JSON) with every NUL character in its strings replaced by U+FFFD
    (one UTF-16 unit, like NUL, so entity offsets stay right)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {k: _without_nul(v) for k, v in value.items()}
    return value


@dataclass
class _Arrival:
    update: Update
    update_id: int
    chat_id: int | None
    level: str | None  # "crisis" / "emergency" by the rules, else None
    lang: str | None
    payload: str
    text: str = ""  # a private message's or edit's text to triage
    rules: TriageResult | None = None  # what the rules said of it

    @property
    def urgent(self) -> bool:
        return self.level is not None

    def queued(self) -> _Queued:
        return _Queued(
            self.update_id, self.update, self.urgent, _chat_key(self.update_id, self.chat_id)
        )


@dataclass
class _Queued:
    update_id: int
    update: Update
    urgent: bool
    key: int  # the chat, whose updates are handled in order


class Intake:
    """Keeps every update, owes crisis replies on arrival, and handles updates from the inbox."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        bot: Bot,
        sessionmaker: async_sessionmaker[AsyncSession],
        triage: Triage,
        locales: Locales,
        replies: UrgentReplies,
        settings: IntakeSettings,
        *,
        forms: BaseStorage | None = None,
        clock: Callable[[], datetime] = utcnow,
        owner: str | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        # The FSM storage as the intake reads it: on its own connections, so a crisis reply
        # never waits for a database connection the handlers hold (default: the dispatcher's).
        self.forms = forms or dispatcher.fsm.storage
        self.bot = bot
        self.sessionmaker = sessionmaker
        self.triage = triage
        self.locales = locales
        self.replies = replies
        self.settings = settings
        self.clock = clock
        self.owner = owner or process_identity()  # signs this process's leases in the inbox
        self.spool = Spool(settings.spool_dir)
        self._chats: dict[int, deque[_Queued]] = {}
        self._busy: set[int] = set()
        self._ready: asyncio.PriorityQueue[tuple[int, int, int]] = asyncio.PriorityQueue()
        self._urgent_ready: asyncio.Queue[tuple[int, int, int]] = asyncio.Queue()
        self._triaging: set[asyncio.Task[None]] = set()  # arrivals being triaged
        self._seq = itertools.count()
        self._known: set[int] = set()  # update ids queued or being handled here
        self._workers: list[asyncio.Task[None]] = []
        self._handling: set[asyncio.Task[Any]] = set()  # workers in the middle of an update
        self._closing = False
        self._direct: set[asyncio.Task[None]] = set()  # replies sent with the database away
        self._enqueued: asyncio.Future[None] | None = None  # the last batch reached the workers
        self._accepting: list[tuple[list[Update], asyncio.Future[None]]] = []  # to be kept
        self._keeper: asyncio.Task[None] | None = None  # keeping them
        self._arriving = 0  # accept calls not yet read by the rules and queued
        self._more = False  # Telegram has more updates waiting (the last batch was full)
        self._quiet = asyncio.Event()  # neither: ordinary handling goes on
        self._quiet.set()
        self._quieting: asyncio.TimerHandle | None = None
        # Per chat, older updates in the inbox that another process holds (or none does), and
        # this process's own that failed and wait for their retry: an update of the chat is
        # handled here only once those older than it have left or are parked (one chat's order,
        # across processes and retries).
        self._foreign: dict[int, set[int]] = {}
        self._retrying: set[int] = set()  # own updates that failed, until taken again
        self._watcher: asyncio.Task[None] | None = None
        # When this process's leases are next renewed: a third of a lease after the last
        # renewal, so each is renewed well before it runs out, and a surge's pending updates
        # are not rewritten on every pass of the loop (each renewal is a row version apiece).
        self._renew_at: datetime | None = None

    # ------------------------------------------------------------ arrival

    async def accept(self, updates: Sequence[Update], *, more: bool = False) -> None:
        """Keep these updates durably; return only when they are kept (or raise).

        Telegram's delivery may be acknowledged once this returns. The triage of what was
        kept runs right after, in a task of its own, so the next batch is fetched meanwhile.
        Calls that come in while a batch is being stored (concurrent webhook requests) are
        kept together in the next transaction: one commit for many updates under load, no
        wait when quiet. `more`: Telegram has more waiting (a full getUpdates batch); ordinary
        handling waits for them too (`ARRIVALS_FIRST_MAX`).
        """
        self._more = more
        self._arrivals_changed()
        if not updates:
            return
        kept = asyncio.get_running_loop().create_future()
        self._accepting.append((list(updates), kept))
        self._arriving += 1
        self._arrivals_changed()
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.create_task(self._keep_pending(), name="intake-keep")
        await kept

    async def _keep_pending(self) -> None:
        while self._accepting:
            waiting, self._accepting = self._accepting, []
            reading: asyncio.Task[None] | None = None
            try:
                # An update delivered twice meanwhile (a retry) is kept once.
                unique = {u.update_id: u for updates, _ in waiting for u in reversed(updates)}
                reading = await self._keep(sorted(unique.values(), key=lambda u: u.update_id))
            except Exception as exc:
                for _, kept in waiting:
                    if not kept.done():
                        kept.set_exception(exc)
            else:
                for _, kept in waiting:
                    if not kept.done():
                        kept.set_result(None)
            finally:
                calls = len(waiting)
                if reading is None:
                    self._arrived(calls)
                else:
                    reading.add_done_callback(functools.partial(self._read, calls))

    def _read(self, calls: int, _task: asyncio.Task[None]) -> None:
        self._arrived(calls)

    def _arrived(self, calls: int) -> None:
        self._arriving -= calls
        self._arrivals_changed()

    def _arrivals_changed(self) -> None:
        if self._quieting is not None:
            self._quieting.cancel()
            self._quieting = None
        if self._arriving or self._more:
            self._quiet.clear()
        elif not self._quiet.is_set():
            self._quieting = asyncio.get_running_loop().call_later(
                ARRIVALS_QUIET_AFTER, self._quiet.set
            )

    async def _keep(self, updates: list[Update]) -> asyncio.Task[None] | None:
        """Keep the updates; the task reading them on arrival (None: spooled instead)."""
        failpoints.reached("received")
        arrivals = [self._arrive(u) for u in updates]
        try:
            fresh, _ = await self._store(arrivals)
        except Exception as exc:  # the database is away: keep them on disk instead
            log.error("database unavailable, %d update(s) spooled: %s", len(arrivals), exc)
            await self._spool(arrivals)
            return None
        failpoints.reached("stored")
        kept = [a for a in arrivals if a.update_id in fresh]
        self._known.update(a.update_id for a in kept)
        # Batches reach the workers in the order they arrived, whatever their triage takes.
        previous, self._enqueued = self._enqueued, asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._triage_on_arrival(kept, previous, self._enqueued))
        self._triaging.add(task)
        task.add_done_callback(self._triaging.discard)
        return task

    async def _triage_on_arrival(
        self,
        arrivals: list[_Arrival],
        previous: asyncio.Future[None] | None,
        enqueued: asyncio.Future[None],
    ) -> None:
        """Triage what was just kept, before any worker gets to it: the rules, then the
        models, most crisis-like first. A crisis or emergency gets its reply owed and sent at
        once, and its chat goes before ordinary ones. The updates go to the workers once the
        rules' replies are sent (so a handler never races its own crisis reply) and after the
        batch before them (so one chat's updates keep their order); the models are asked at
        once, without waiting for either. The handler triages again and gets the same
        judgment (the models' is remembered): one reply."""
        texts = [a for a in arrivals if a.text]
        try:
            if texts:
                # In a worker thread: a hundred texts are tens of milliseconds of rules, and
                # the event loop meanwhile keeps the next batch coming in.
                decided = await asyncio.to_thread(
                    lambda: [self.triage.rules(a.text) for a in texts]
                )
                owing = []
                for arrival, rules in zip(texts, decided, strict=True):
                    arrival.rules = rules
                    if rules.level in URGENT_REPLY_KEYS:
                        arrival.level = rules.level
                        owing.append(self._owe_on_arrival(arrival, rules))
                ask = [a for a in texts if a.level is None]
                if ask and self.triage.has_models:
                    models = asyncio.create_task(self._models_on_arrival(ask))
                    self._triaging.add(models)
                    models.add_done_callback(self._triaging.discard)
                await asyncio.gather(*owing)  # each chat's reply at once, none after another
        finally:
            try:
                if previous is not None:
                    await asyncio.shield(previous)
                for arrival in arrivals:
                    self._enqueue(arrival.queued())
            finally:
                enqueued.set_result(None)

    async def _models_on_arrival(self, ask: list[_Arrival]) -> None:
        """The models' opinion on texts the rules found neither crisis nor emergency; a crisis
        they find is owed its reply, and its chat goes first (queued already or not yet)."""
        try:
            results = await self.triage.queue.second_opinions(
                [(a.text, a.rules) for a in ask if a.rules is not None]
            )
        except Exception:
            log.exception("the models' judgment on arrival failed")
            return
        urgent = []
        for arrival, result in zip(ask, results, strict=True):
            if result.level in URGENT_REPLY_KEYS:
                arrival.level = result.level  # urgent when it reaches the workers
                urgent.append(self._owe_on_arrival(arrival, result))
        await asyncio.gather(*urgent)

    async def _owe_on_arrival(self, arrival: _Arrival, decided: TriageResult) -> None:
        message, _ = citizen_text(arrival.update)
        if message is None or arrival.chat_id is None or await self._in_form(message):
            return
        self._bump(arrival.chat_id, arrival.update_id)
        try:
            async with self.sessionmaker() as session:
                officers = await self._officers_have_it(session, arrival.chat_id)
                citizen = None if officers else await session.get(Citizen, arrival.chat_id)
                # Marked urgent in the inbox too: a process taking it over goes to it first.
                await session.execute(
                    update(InboxUpdate)
                    .where(InboxUpdate.update_id == arrival.update_id)
                    .values(urgent=True)
                )
                if officers:
                    await session.commit()
                    return
                lang = self.locales.for_citizen(citizen, arrival.text, _telegram_language(message))
                await self.replies.owe(
                    session, arrival.update_id, arrival.chat_id, decided.level, lang
                )
        except Exception as exc:  # the handler owes it again when it gets there
            log.warning("update %s: reply not owed on arrival: %s", arrival.update_id, exc)

    def _arrive(self, update: Update) -> _Arrival:
        payload = update.model_dump_json(exclude_unset=True, by_alias=True)
        if _NUL_IN_JSON in payload:
            # PostgreSQL's text cannot hold NUL: a message carrying one would fail every
            # statement that stores its text, and be parked. It is read with U+FFFD instead.
            data = _without_nul(json.loads(payload))
            update = Update.model_validate(data, context={"bot": self.bot})
            payload = json.dumps(data, ensure_ascii=False)
        message, text = citizen_text(update)
        chat = message.chat.id if message is not None else _chat_of(update)
        return _Arrival(update, update.update_id, chat, None, None, payload, text)

    async def _in_form(self, message: Message) -> bool:
        """The sender is half-way through a form (the staff's alert wizard): what they type
        is an answer, not a message to triage, and the handlers decide as before."""
        if message.from_user is None:
            return False
        key = StorageKey(bot_id=self.bot.id, chat_id=message.chat.id, user_id=message.from_user.id)
        try:
            return await self.forms.get_state(key) is not None
        except Exception:  # storage away: better a crisis reply too many than one too few
            return False

    async def _store(
        self, arrivals: list[_Arrival], spooled: dict[int, dict[str, Any]] | None = None
    ) -> tuple[set[int], set[int]]:
        """Insert the new arrivals in one transaction; the ids inserted, and of the replies.

        `spooled` holds the reply rows of updates drained from the spool, decided (and maybe
        sent) while the database was away; they are stored in the same transaction.
        """
        ids = [a.update_id for a in arrivals]
        lease = self.clock() + timedelta(seconds=self.settings.lease_seconds)
        async with self.sessionmaker() as session:
            done = set(
                (
                    await session.scalars(
                        select(ProcessedUpdate.update_id).where(ProcessedUpdate.update_id.in_(ids))
                    )
                ).all()
            )
            rows = [
                {
                    "update_id": a.update_id,
                    "chat_id": a.chat_id,
                    "urgent": a.urgent,
                    "payload": a.payload,
                    "received_at": self.clock(),
                    "lease_until": lease,
                    "attempts": 0,
                    "parked": False,
                    "owner": self.owner,
                }
                for a in arrivals
                if a.update_id not in done
            ]
            fresh = await insert_ignore(session, InboxUpdate, rows)
            replies = [r for i, r in (spooled or {}).items() if i in fresh]
            owed = await insert_ignore(session, UrgentReply, replies)
            newest: dict[int, int] = {}
            for a in arrivals:
                if a.update_id in fresh and a.chat_id is not None:
                    newest[a.chat_id] = max(a.update_id, newest.get(a.chat_id, a.update_id))
            if newest:
                held = await session.execute(
                    select(InboxUpdate.chat_id, InboxUpdate.update_id).where(
                        InboxUpdate.chat_id.in_(list(newest)),
                        InboxUpdate.parked.is_(False),
                        or_(InboxUpdate.owner.is_(None), InboxUpdate.owner != self.owner),
                    )
                )
                for chat, update_id in held.all():
                    if chat is not None and update_id < newest[chat]:
                        self._foreign.setdefault(chat, set()).add(update_id)
            await session.commit()
        return fresh, owed

    def _blocked(self, key: int) -> bool:
        """The chat's next update has an older one held by another process."""
        foreign, queue = self._foreign.get(key), self._chats.get(key)
        return bool(foreign and queue and min(foreign) < queue[0].update_id)

    async def _officers_have_it(self, session: AsyncSession, citizen_id: int) -> bool:
        """An urgent case is open: the officers talk with the citizen; the handler decides."""
        found = await session.scalar(
            select(Case.id).where(
                Case.citizen_id == citizen_id,
                Case.status != CaseStatus.CLOSED,
                Case.priority == CasePriority.URGENT,
            )
        )
        return found is not None

    async def _spool(self, arrivals: list[_Arrival]) -> None:
        """Keep the arrivals on disk; the rules triage them now and the urgent replies are
        sent straight away (before the delivery is acknowledged) and noted in the spool."""
        for arrival in arrivals:
            message, _ = citizen_text(arrival.update)
            if message is None or not arrival.text:
                continue
            decided = await self.triage.arules(arrival.text)
            if decided.level in URGENT_REPLY_KEYS and not await self._in_form(message):
                arrival.level = decided.level
                # No database: a /language choice cannot be read; the script or Telegram's.
                arrival.lang = self.locales.for_citizen(
                    None, arrival.text, _telegram_language(message)
                )
        await self.spool.keep(
            {
                "update": json.loads(a.payload),
                "urgent": None
                if a.level is None or a.chat_id is None
                else {"chat_id": a.chat_id, "level": a.level, "lang": a.lang},
            }
            for a in arrivals
        )
        failpoints.reached("stored")
        sending = [
            asyncio.create_task(self._reply_without_database(a))
            for a in arrivals
            if a.level is not None and a.chat_id is not None
        ]
        for task in sending:
            self._direct.add(task)
            task.add_done_callback(self._direct.discard)
        if sending:
            # Sent before the delivery is acknowledged, if Telegram lets it go within a few
            # seconds (else it goes on trying in the background).
            await asyncio.wait(sending, timeout=SEND_WAIT_SECONDS)

    async def _reply_without_database(self, arrival: _Arrival) -> None:
        assert arrival.level is not None and arrival.chat_id is not None
        text = self.replies.text_for(arrival.lang, arrival.level)
        delivered, _, error = await self.replies.send(arrival.chat_id, text)
        await self.spool.keep([{"sent": arrival.update_id, "delivered": delivered, "error": error}])
        if delivered:
            failpoints.reached("replied")

    async def _drain_into_inbox(self, records: list[dict[str, Any]]) -> None:
        """Store spooled updates in the inbox, with the replies decided while spooling."""
        outcomes = {r["sent"]: r for r in records if "sent" in r}
        arrivals: list[_Arrival] = []
        replies: dict[int, dict[str, Any]] = {}
        for record in records:
            if "update" not in record:
                continue
            update_obj = Update.model_validate(record["update"], context={"bot": self.bot})
            urgent = record.get("urgent")
            arrival = _Arrival(
                update_obj,
                update_obj.update_id,
                _chat_of(update_obj),
                urgent["level"] if urgent else None,
                urgent["lang"] if urgent else None,
                json.dumps(record["update"], ensure_ascii=False),
            )
            arrivals.append(arrival)
            if urgent:
                row = self.replies.row(
                    arrival.update_id, urgent["chat_id"], urgent["level"], urgent["lang"]
                )
                outcome = outcomes.get(arrival.update_id)
                if outcome is not None:
                    delivered = outcome["delivered"]
                    row["state"] = (
                        UrgentReplyState.SENT if delivered else UrgentReplyState.UNREACHABLE
                    )
                    row["sent_at"] = utcnow() if delivered else None
                    row["last_error"] = outcome.get("error")
                    row["attempts"] = 1
                replies[arrival.update_id] = row
        if not arrivals:
            return
        fresh, owed = await self._store(arrivals, spooled=replies)
        for update_id in owed:
            self.replies.kick(update_id)  # sends only rows still pending
        for arrival in arrivals:
            if arrival.update_id in fresh:
                self._enqueue(arrival.queued())

    # ------------------------------------------------------------ handling

    def _enqueue(self, item: _Queued) -> None:
        key = item.key
        self._known.add(item.update_id)
        if item.update_id in self._retrying:  # its retry: no longer waited for
            self._retrying.discard(item.update_id)
            self._forget_waited(key, item.update_id)
        # In update order: an older update taken over from a dead process goes first.
        bisect.insort(self._chats.setdefault(key, deque()), item, key=lambda q: q.update_id)
        if key not in self._busy:
            self._ready_unless_blocked(key)

    def _ready_unless_blocked(self, key: int) -> None:
        queue = self._chats.get(key)
        if not queue:
            return
        if self._blocked(key):
            if self._watcher is None or self._watcher.done():
                self._watcher = asyncio.create_task(self._watch_foreign(), name="intake-order")
        else:
            self._make_ready(key, any(q.urgent for q in queue))

    def _forget_waited(self, key: int, update_id: int) -> None:
        waited = self._foreign.get(key)
        if waited is not None:
            waited.discard(update_id)
            if not waited:
                del self._foreign[key]

    async def _watch_foreign(self) -> None:
        """Let a chat go on once the older updates it waits for have left the inbox or are
        parked (handled by another process, or taken over by this one when the other died;
        this process's own failed update is taken again by `tick` after its backoff)."""
        while self._foreign and not self._closing:
            await asyncio.sleep(FOREIGN_POLL_SECONDS)
            ids = [update_id for held in self._foreign.values() for update_id in held]
            looked = set(ids) | self._retrying
            try:
                async with self.sessionmaker() as session:
                    rows = await session.execute(
                        select(InboxUpdate.update_id, InboxUpdate.owner).where(
                            InboxUpdate.update_id.in_(ids), InboxUpdate.parked.is_(False)
                        )
                    )
                    still = {
                        update_id
                        for update_id, owner in rows.all()
                        if owner != self.owner or update_id in self._retrying
                    }
            except Exception as exc:  # the database is away: look again
                log.warning("could not look at chats waiting for older updates: %s", exc)
                continue
            # Only what was looked up may be let go: an older update of a chat found by an
            # arrival kept during the query above is still waited for (dropping it let a
            # newer update of the chat be handled first: an answer out of order).
            gone = looked - still
            for chat in list(self._foreign):
                self._foreign[chat] -= gone
                if not self._foreign[chat]:
                    del self._foreign[chat]
                if chat not in self._busy and not self._blocked(chat):
                    queue = self._chats.get(chat)
                    if queue:
                        self._make_ready(chat, any(q.urgent for q in queue))
            self._retrying -= gone

    def _make_ready(self, key: int, urgent: bool) -> None:
        entry = (0 if urgent else 1, next(self._seq), key)
        self._ready.put_nowait(entry)
        if urgent:  # the reserved workers take urgent chats only
            self._urgent_ready.put_nowait(entry)

    def _bump(self, chat_id: int, update_id: int) -> None:
        """The models found an update urgent: its chat goes before ordinary ones."""
        queue = self._chats.get(chat_id)
        for item in queue or ():
            if item.update_id == update_id:
                item.urgent = True
                if chat_id not in self._busy and not self._blocked(chat_id):
                    self._make_ready(chat_id, True)

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The workers (for a readiness check: one that stopped is a problem)."""
        return list(self._workers)

    def start(self) -> None:
        """Start the workers that handle queued updates (idempotent)."""
        if self._workers:
            return
        for n in range(self.settings.concurrency):
            self._workers.append(asyncio.create_task(self._work(), name=f"intake-{n}"))
        for n in range(URGENT_WORKERS):
            self._workers.append(
                asyncio.create_task(self._work(urgent_only=True), name=f"intake-urgent-{n}")
            )

    async def _work(self, urgent_only: bool = False) -> None:
        me = asyncio.current_task()
        assert me is not None
        line = self._urgent_ready if urgent_only else self._ready
        while not self._closing:
            _, _, key = await line.get()
            if not urgent_only and not self._quiet.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._quiet.wait(), ARRIVALS_FIRST_MAX)
            queue = self._chats.get(key)
            if key in self._busy or not queue or self._blocked(key):
                continue
            self._busy.add(key)
            item = queue.popleft()
            self._handling.add(me)
            try:
                if await self._handle(item):
                    # Tried again after its backoff (`tick`); the chat's later updates wait.
                    self._retrying.add(item.update_id)
                    self._foreign.setdefault(key, set()).add(item.update_id)
            finally:
                self._handling.discard(me)
                self._busy.discard(key)
                self._known.discard(item.update_id)
                if queue:
                    self._ready_unless_blocked(key)
                else:
                    self._chats.pop(key, None)

    async def _handle(self, item: _Queued) -> bool:
        """Handle one update; True when it failed and will be tried again."""
        done = InboxDone(item.update_id)
        try:
            kind = item.update.event_type
        except UpdateTypeLookupError:  # a kind of update this aiogram does not know
            kind = "unknown"
        started = time.perf_counter()
        try:
            # The handlers' session middleware marks the update handled in its last commit
            # (`inbox_done`); without one (a bare dispatcher), `_done` does it after.
            await self.dispatcher.feed_update(self.bot, item.update, inbox_done=done)
        except Exception as exc:
            self._account(item, kind, "failed", time.perf_counter() - started)
            log.exception("update %s failed", item.update_id)
            return await self._failed(item.update_id, exc)
        self._account(item, kind, "handled", time.perf_counter() - started)
        failpoints.reached("card_posted")
        if not done.marked:
            await self._done(item.update_id)
        return False

    @staticmethod
    def _account(item: _Queued, kind: str, outcome: str, seconds: float) -> None:
        """The update's metrics and its one log line (ids and timing only, never its text)."""
        metrics.UPDATES.labels(kind, outcome).inc()
        metrics.UPDATE_SECONDS.labels(kind).observe(seconds)
        log.info(
            "update %s %s %s in %.0f ms",
            item.update_id,
            kind,
            outcome,
            seconds * 1000,
            extra={
                "update_id": item.update_id,
                "update_type": kind,
                "outcome": outcome,
                "latency_ms": round(seconds * 1000, 1),
                "citizen_id": item.key if item.key > 0 else None,  # a private chat's id
            },
        )

    async def _done(self, update_id: int) -> None:
        """The update leaves the inbox and is recorded as handled, in one transaction."""
        for pause in (0.2, 0.5, 1, 2, 4, 0):
            try:
                async with self.sessionmaker() as session:
                    await leave_inbox(session, [update_id])
                    await session.commit()
                return
            except Exception as exc:
                log.warning("update %s handled but not recorded yet: %s", update_id, exc)
                await asyncio.sleep(pause)
        log.error("update %s handled but not recorded: it will be handled again", update_id)

    async def _failed(self, update_id: int, exc: BaseException) -> bool:
        """Count the failure in its own transaction (it survives the handler's rollback);
        whether the update will be tried again (False: parked, or gone)."""
        try:
            async with self.sessionmaker() as session:
                row = await session.get(InboxUpdate, update_id)
                if row is None:
                    return False
                row.attempts += 1
                row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                row.lease_until = self.clock() + timedelta(seconds=min(2**row.attempts, 300))
                if row.attempts >= self.settings.max_attempts:
                    row.parked = True
                    log.error(
                        "update %s parked after %d attempts: %s", update_id, row.attempts, exc
                    )
                await session.commit()
                return not row.parked
        except Exception as db_exc:  # the lease runs out and it is tried again
            log.warning("failure of update %s not recorded: %s", update_id, db_exc)
            return True

    # ------------------------------------------------------------ the loop

    async def tick(self) -> None:
        """Renew our leases, drain the spool, take over updates whose lease ran out."""
        now = self.clock()
        lease = now + timedelta(seconds=self.settings.lease_seconds)
        async with self.sessionmaker() as session:
            renew = self._known and (self._renew_at is None or now >= self._renew_at)
            if renew:
                await session.execute(
                    update(InboxUpdate)
                    .where(InboxUpdate.update_id.in_(list(self._known)))
                    .values(lease_until=lease, owner=self.owner)
                )
            taken = (
                await session.execute(
                    update(InboxUpdate)
                    .where(
                        InboxUpdate.parked.is_(False),
                        (InboxUpdate.lease_until.is_(None)) | (InboxUpdate.lease_until < now),
                        InboxUpdate.update_id.not_in(list(self._known) or [0]),
                    )
                    .values(lease_until=lease, owner=self.owner)
                    .returning(
                        InboxUpdate.update_id,
                        InboxUpdate.chat_id,
                        InboxUpdate.urgent,
                        InboxUpdate.payload,
                    )
                )
            ).all()
            await session.commit()
        if renew or not self._known:  # (updates kept from now on hold fresh leases)
            self._renew_at = now + timedelta(seconds=self.settings.lease_seconds / 3)
        for update_id, chat_id, urgent, payload in sorted(taken):
            update_obj = Update.model_validate_json(payload, context={"bot": self.bot})
            self._enqueue(_Queued(update_id, update_obj, urgent, _chat_key(update_id, chat_id)))
        if taken:
            log.warning("took over %d update(s) from the inbox", len(taken))
        await self.spool.drain(self._drain_into_inbox)

    @property
    def busy(self) -> bool:
        """Updates kept here but not handled yet (tests wait for quiet)."""
        return bool(self._known) or self.replies.busy or bool(self._direct) or bool(self._triaging)

    async def close(self, grace: float) -> None:
        """Let started updates finish, give the rest back to the inbox, stop the workers."""
        self._closing = True
        handling = [t for t in self._workers if t in self._handling]
        for task in self._workers:
            if task not in self._handling:
                task.cancel()  # idle, waiting for work
        if handling:
            await asyncio.wait(handling, timeout=grace)
        for task in self._workers:
            await cancel_and_wait(task)
        self._workers.clear()
        if self._watcher is not None:
            await cancel_and_wait(self._watcher)
        for task in list(self._triaging):
            task.cancel()
        if self._triaging:
            await asyncio.wait(list(self._triaging), timeout=grace)
        queued = list(self._known)
        self._known.clear()
        self._chats.clear()
        if queued:
            with contextlib.suppress(Exception):
                async with self.sessionmaker() as session:
                    await session.execute(
                        update(InboxUpdate)
                        .where(InboxUpdate.update_id.in_(queued))
                        .values(lease_until=None, owner=None)
                    )
                    await session.commit()
        await self.replies.wait(grace)
        if self._direct:
            await asyncio.wait(list(self._direct), timeout=grace)
        self.spool.close()


def _telegram_language(message: Message) -> str | None:
    return message.from_user.language_code if message.from_user else None


def _chat_of(update: Update) -> int | None:
    event = update.event
    chat = getattr(event, "chat", None)
    if chat is None and update.callback_query is not None:
        message = update.callback_query.message
        chat = getattr(message, "chat", None)
        if chat is None:
            return update.callback_query.from_user.id
    return chat.id if chat is not None else None


def _chat_key(update_id: int, chat_id: int | None) -> int:
    # Updates with no chat (inline queries and the like) need no order: a key of their own.
    return chat_id if chat_id is not None else -(2**62) - update_id

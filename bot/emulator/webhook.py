"""Webhook delivery as Telegram does it: up to `max_connections` updates in flight at once,
one chat's updates one after another in the order they came, failures retried with backoff.

A failed update holds back only its own chat's later updates; other chats go on. An update
that concerns no chat (an inline query, a poll) waits for nothing. Updates are taken off the
queue only when the receiver answered 2xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp

from bot.emulator.state import BotState, now

if TYPE_CHECKING:
    from bot.emulator.params import Params

log = logging.getLogger(__name__)

# The method call a receiver may put in its response (see updates._webhook_reply).
ReplyReader = Callable[[aiohttp.ClientResponse], Awaitable["tuple[str, Params] | None"]]


def update_chat(update: dict[str, Any]) -> tuple[str, int] | None:
    """The chat (or, without one, the user) whose updates must arrive in order; None: none."""
    event = next((v for k, v in update.items() if k != "update_id"), None)
    if not isinstance(event, dict):
        return None
    chat = event.get("chat") or (event.get("message") or {}).get("chat")
    if isinstance(chat, dict) and "id" in chat:
        return ("chat", int(chat["id"]))
    sender = event.get("from") or event.get("user")
    if isinstance(sender, dict) and "id" in sender:
        return ("user", int(sender["id"]))
    return None


@dataclass
class WebhookDelivery:
    """Delivers one bot's queued updates to its webhook until cancelled."""

    state: BotState
    stats: Any  # the emulator's Counter
    reply: ReplyReader
    call: Callable[[str, str, Any], Awaitable[Any]]
    timeout: float
    retry_base: float
    retry_max: float
    closing: Callable[[], bool]
    _flying: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    _retry_at: dict[int, float] = field(default_factory=dict)
    _attempts: dict[int, int] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        state = self.state
        loop = asyncio.get_running_loop()
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        # No pool limit of aiohttp's own: max_connections is the only limit.
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            try:
                while not self.closing():
                    state.updates = [u for u in state.updates if state.wants(_kind(u))]
                    state.update_event.clear()
                    self._changed.clear()
                    wake = self._start_due(session, loop.time())
                    waits = [
                        asyncio.ensure_future(state.update_event.wait()),
                        asyncio.ensure_future(self._changed.wait()),
                    ]
                    try:
                        await asyncio.wait(
                            waits,
                            timeout=None if wake is None else max(wake - loop.time(), 0.0),
                            return_when=asyncio.FIRST_COMPLETED,
                        )
                    finally:
                        for waiting in waits:
                            waiting.cancel()
            finally:
                for task in self._flying.values():
                    task.cancel()
                if self._flying:
                    await asyncio.wait(list(self._flying.values()))

    def _start_due(self, session: aiohttp.ClientSession, at: float) -> float | None:
        """Start every update that may go now; the time of the next retry due, if any."""
        held: set[tuple[str, int]] = set()  # chats with an earlier update not delivered yet
        wake: float | None = None
        for update in self.state.updates:
            if len(self._flying) >= self.state.webhook_max_connections:
                break
            chat = update_chat(update)
            if chat is not None:
                if chat in held:
                    continue
                held.add(chat)
            update_id = update["update_id"]
            if update_id in self._flying:
                continue
            due = self._retry_at.get(update_id, 0.0)
            if due > at:
                wake = due if wake is None else min(wake, due)
                continue
            self._flying[update_id] = asyncio.create_task(self._deliver(session, update))
        in_flight = len(self._flying)
        if in_flight > self.stats["webhook_max_in_flight"]:
            self.stats["webhook_max_in_flight"] = in_flight
        return wake

    async def _deliver(self, session: aiohttp.ClientSession, update: dict[str, Any]) -> None:
        state = self.state
        update_id = update["update_id"]
        headers = {}
        if state.webhook_secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = state.webhook_secret
        error: str | None = None
        reply = None
        try:
            async with session.post(state.webhook_url, json=update, headers=headers) as response:
                if 200 <= response.status < 300:
                    reply = await self.reply(response)
                else:
                    await response.read()
                    error = f"Wrong response from the webhook: {response.status} " + (
                        response.reason or ""
                    )
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = (
                "Connection refused"
                if isinstance(exc, aiohttp.ClientConnectorError)
                else f"Connection error: {type(exc).__name__}"
            )
        except Exception as exc:  # a broken receiver must never stop the emulator
            log.exception("webhook delivery failed")
            error = f"Internal error: {type(exc).__name__}"
        finally:
            self._flying.pop(update_id, None)
            self._changed.set()
        if error is None:
            state.updates = [u for u in state.updates if u is not update]
            self._retry_at.pop(update_id, None)
            self._attempts.pop(update_id, None)
            self.stats["webhook_deliveries"] += 1
            if reply is not None:
                # Telegram gives no feedback for failed webhook replies.
                with contextlib.suppress(Exception):
                    await self.call(state.token, reply[0], reply[1])
            return
        self.stats["webhook_failures"] += 1
        state.last_error_date = now()
        state.last_error_message = error.strip()
        attempt = self._attempts.get(update_id, 0)
        self._attempts[update_id] = attempt + 1
        delay = min(self.retry_base * (2**attempt), self.retry_max)
        self._retry_at[update_id] = asyncio.get_running_loop().time() + delay


def _kind(update: dict[str, Any]) -> str:
    return next(k for k in update if k != "update_id")

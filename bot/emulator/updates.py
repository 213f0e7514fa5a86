"""How updates reach a bot: getUpdates long polling, or a webhook (setWebhook, deleteWebhook,
getWebhookInfo; the delivery itself is in webhook.py)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bot.emulator.errors import ApiError, bad_request
from bot.emulator.params import Params, Upload
from bot.emulator.state import BotState
from bot.emulator.webhook import WebhookDelivery
from bot.emulator.world import World

_SECRET_RE = re.compile(r"[A-Za-z0-9_-]*")
MAX_SECRET_TOKEN = 256
OTHER_GET_UPDATES = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is "
    "running"
)

# Runs a Bot API call as the HTTP layer would (a method named in a webhook response).
Call = Callable[[str, str, Params], Awaitable[Any]]


class UpdateMethods:
    """getUpdates and the webhook methods of every bot, and their background deliveries."""

    def __init__(self, world: World, call: Call) -> None:
        self.world = world
        self._call = call

    async def release(self, state: BotState) -> None:
        """Stop the bot's webhook deliveries and end its long poll with an empty answer."""
        await self._stop_webhook(state)
        _end_poll(state, None)
        state.update_event.set()

    async def m_getUpdates(self, state: BotState, params: Params) -> list[dict[str, Any]]:
        """getUpdates with real long polling; a newer call terminates an older one."""
        if state.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = params.int("offset") or 0
        limit = min(max(params.int("limit") or 100, 1), 100)
        timeout = max(params.int("timeout") or 0, 0)
        if params.has("allowed_updates"):
            allowed = params.json("allowed_updates", "allowed updates")
            if isinstance(allowed, list):
                state.allowed_updates = [str(a) for a in allowed]
        if offset > 0:
            state.updates = [u for u in state.updates if u["update_id"] >= offset]
        elif offset < 0:
            state.updates = state.updates[offset:]
        _end_poll(state, OTHER_GET_UPDATES)
        mine: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        state.active_poll = mine
        deadline = time.monotonic() + timeout
        try:
            while True:
                if mine.done() and not self.world.closing:
                    # Ended by a newer getUpdates or by setWebhook; the result says which.
                    raise ApiError(409, mine.result() or OTHER_GET_UPDATES)
                state.updates = [u for u in state.updates if state.wants(_update_kind(u))]
                ready = state.updates[:limit]
                remaining = deadline - time.monotonic()
                if ready or remaining <= 0 or self.world.closing or state.webhook_url:
                    return ready
                state.update_event.clear()
                waiter: asyncio.Future[Any] = asyncio.ensure_future(state.update_event.wait())
                wake: set[asyncio.Future[Any]] = {waiter, mine}
                try:
                    await asyncio.wait(wake, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
        finally:
            if state.active_poll is mine:
                state.active_poll = None

    async def m_setWebhook(self, state: BotState, params: Params) -> bool:
        """setWebhook: start delivering updates by POST to the URL."""
        url = (params.str("url") or "").strip()
        if not url:
            return await self.m_deleteWebhook(state, params)
        # Telegram ends a running long poll as soon as a webhook is asked for, before it checks
        # the rest of the request.
        _end_poll(state, "Conflict: terminated by setWebhook request")
        if not url.startswith("https://") and not (
            self.world.config.allow_http_webhook and url.startswith("http://")
        ):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        # An empty secret_token means no secret (no header on deliveries).
        secret = params.str("secret_token") or ""
        if len(secret) > MAX_SECRET_TOKEN:
            raise bad_request("secret token is too long")
        if not _SECRET_RE.fullmatch(secret):
            raise bad_request("secret token contains unallowed characters")
        if params.has("allowed_updates"):
            allowed = params.json("allowed_updates", "allowed updates")
            if isinstance(allowed, list):
                state.allowed_updates = [str(a) for a in allowed]
        if params.bool("drop_pending_updates"):
            state.updates.clear()
        await self._stop_webhook(state)
        state.webhook_url = url
        state.webhook_secret = secret or None
        state.webhook_max_connections = params.int("max_connections") or 40
        state.last_error_date = None
        state.last_error_message = None
        state.webhook_task = asyncio.get_running_loop().create_task(self._webhook_loop(state))
        self.world.emit("webhook_set", None, bot_id=state.user.id, url=url)
        return True

    async def m_deleteWebhook(self, state: BotState, params: Params) -> bool:
        """deleteWebhook."""
        if params.bool("drop_pending_updates"):
            state.updates.clear()
        await self._stop_webhook(state)
        state.webhook_url = ""
        state.webhook_secret = None
        return True

    async def m_getWebhookInfo(self, state: BotState, params: Params) -> dict[str, Any]:
        """getWebhookInfo."""
        info: dict[str, Any] = {
            "url": state.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(state.updates),
        }
        if state.webhook_url:
            info["max_connections"] = state.webhook_max_connections
            info["ip_address"] = "127.0.0.1"
            if state.allowed_updates:
                info["allowed_updates"] = state.allowed_updates
        if state.last_error_date is not None:
            info["last_error_date"] = state.last_error_date
            info["last_error_message"] = state.last_error_message or ""
        return info

    async def _stop_webhook(self, state: BotState) -> None:
        task = state.webhook_task
        state.webhook_task = None
        if task is not None and not task.done():
            await cancel_and_wait(task)

    async def _webhook_loop(self, state: BotState) -> None:
        """Deliver queued updates to the webhook (see `bot.emulator.webhook`); never raise."""
        await WebhookDelivery(
            state,
            self.world.stats,
            _webhook_reply,
            self._call,
            self.world.config.webhook_timeout,
            self.world.config.webhook_retry_base,
            self.world.config.webhook_retry_max,
            lambda: self.world.closing,
        ).run()


def _end_poll(state: BotState, conflict: str | None) -> None:
    """End the bot's running getUpdates: with a 409 carrying ``conflict``, or (None) with an
    empty answer when the emulator shuts down."""
    if state.active_poll is not None and not state.active_poll.done():
        state.active_poll.set_result(conflict)


def _update_kind(update: dict[str, Any]) -> str:
    return next(k for k in update if k != "update_id")


async def _webhook_reply(response: aiohttp.ClientResponse) -> tuple[str, Params] | None:
    """A method call the receiver put in its webhook response (JSON or form), if any."""
    values: dict[str, Any] = {}
    uploads: dict[str, Upload] = {}
    try:
        if response.content_type == "application/json":
            payload = await response.json()
            if isinstance(payload, dict):
                values = payload
        elif response.content_type.startswith("multipart/"):
            reader = aiohttp.MultipartReader.from_response(response)
            while (part := await reader.next()) is not None:
                if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
                    continue
                if part.filename is not None:
                    data = bytes(await part.read(decode=False))
                    uploads[part.name] = Upload(part.filename, None, data)
                else:
                    values[part.name] = await part.text()
        else:
            await response.read()
    except (ValueError, aiohttp.ClientError):
        return None
    method = values.pop("method", None)
    if not isinstance(method, str) or not method:
        return None
    return method, Params(values, uploads)


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel a background task and wait for it to end; a cancellation aimed at the caller
    while it waits is passed on, not swallowed. (The emulator imports nothing from Safewell.)"""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise

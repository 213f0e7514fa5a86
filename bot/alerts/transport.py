"""The broadcast hot path: one `sendMessage` per recipient with the least work per message.

A broadcast sends the same text to every recipient, so the request body is serialised once
per rendered language and only the `chat_id` (and, for updates, the message to reply to) is
put in front of it. Going through aiogram's `Bot.send_message` would build a pydantic method
object, a multipart form and a validated `Message` per recipient: about half of the sending
process's CPU per message at the paid 1,000/s (see benchmarks/alerts_throughput.py).

Only the answer's `ok` and `result.message_id` are read. Anything else goes to aiogram's own
`check_response`, so every error reaches the engine as the exception aiogram would raise
(`TelegramRetryAfter` with its `retry_after`, `TelegramForbiddenError`, …): one mapping of
Telegram's errors in the project, aiogram's. The request uses the bot's own aiohttp session,
so its connection pool, API server and timeout apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from aiogram.methods import SendMessage

from bot import metrics
from bot.alerts.render import RenderedAlert

_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class PreparedMessage:
    """A rendered alert serialised once: the JSON object's members after `chat_id`."""

    text: str
    tail: bytes  # `"text":…,"parse_mode":"HTML",…}`: the body after `{"chat_id":N,`


class BroadcastTransport:
    """Sends prepared messages through a bot's session; returns the new message id."""

    def __init__(self, bot: Bot, *, paid_broadcast: bool) -> None:
        if not isinstance(bot.session, AiohttpSession):
            raise TypeError("the broadcast transport needs the bot's aiohttp session")
        self.bot = bot
        self.session = bot.session
        self.paid_broadcast = paid_broadcast
        self._url = bot.session.api.api_url(token=bot.token, method="sendMessage")
        self._timeout = aiohttp.ClientTimeout(total=float(bot.session.timeout))

    def prepare(self, message: RenderedAlert) -> PreparedMessage:
        """Serialise everything that is the same for every recipient."""
        fields: dict[str, Any] = {"text": message.text, "parse_mode": "HTML"}
        if message.disable_notification:
            fields["disable_notification"] = True
        if self.paid_broadcast:
            fields["allow_paid_broadcast"] = True
        body = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
        return PreparedMessage(message.text, body[1:].encode())

    @staticmethod
    def body(chat_id: int, prepared: PreparedMessage, reply_to: int | None = None) -> bytes:
        """The whole JSON request body for one recipient."""
        head = b'{"chat_id":%d,' % chat_id
        if reply_to is not None:
            head += (
                b'"reply_parameters":{"message_id":%d,"allow_sending_without_reply":true},'
                % reply_to
            )
        return head + prepared.tail

    async def send(self, chat_id: int, prepared: PreparedMessage, reply_to: int | None) -> int:
        """Send to one chat; raises aiogram's exception for whatever Telegram answered.

        Counted in `bot.metrics` like every other Bot API call (this path skips aiogram's)."""
        try:
            message_id = await self._send(chat_id, prepared, reply_to)
        except TelegramAPIError as exc:
            metrics.telegram_call("SendMessage", exc)
            raise
        metrics.telegram_call("SendMessage")
        return message_id

    async def _send(self, chat_id: int, prepared: PreparedMessage, reply_to: int | None) -> int:
        session = await self.session.create_session()
        try:
            async with session.post(
                self._url,
                data=self.body(chat_id, prepared, reply_to),
                headers=_HEADERS,
                timeout=self._timeout,
            ) as resp:
                status, raw = resp.status, await resp.read()
        except TimeoutError as exc:
            raise TelegramNetworkError(self._method(chat_id, prepared), "Request timeout") from exc
        except aiohttp.ClientError as exc:
            raise TelegramNetworkError(
                self._method(chat_id, prepared), f"{type(exc).__name__}: {exc}"
            ) from exc
        if status == 200:
            try:
                answer = json.loads(raw)
                if answer.get("ok") is True:
                    return int(answer["result"]["message_id"])
            except (ValueError, TypeError, KeyError, AttributeError):
                pass  # not the usual answer: let aiogram judge it below
        # Errors (and anything odd) are rare: aiogram maps them to its exceptions.
        method = self._method(chat_id, prepared)
        response = self.session.check_response(
            self.bot, method, status, raw.decode("utf-8", "replace")
        )
        result = response.result
        if result is None:
            raise TelegramAPIError(method, "answer without a message")
        return result.message_id

    @staticmethod
    def _method(chat_id: int, prepared: PreparedMessage) -> SendMessage:
        return SendMessage(chat_id=chat_id, text=prepared.text)

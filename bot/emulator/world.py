"""The emulated world every part of the emulator shares: bots, users, chats, files, the event
log and counters, and the primitives both the Bot API methods and the control API build on (a
message appears in a chat, an update reaches the bots that see it, a forum topic opens or goes)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bot.emulator.errors import ControlError, bad_request, forbidden
from bot.emulator.faults import Fault
from bot.emulator.limits import Limits, RateLimiter
from bot.emulator.params import Params
from bot.emulator.state import (
    BotState,
    Chat,
    ForumTopic,
    IdSource,
    StoredFile,
    StoredMessage,
    User,
    now,
)

SERVICE_KEYS = (
    "forum_topic_created",
    "forum_topic_edited",
    "forum_topic_closed",
    "forum_topic_reopened",
    "pinned_message",
)


@dataclass
class EmulatorConfig:
    """Behaviour switches; the defaults imitate Telegram."""

    limits: Limits = field(default_factory=Limits)
    # Telegram stops accepting answerCallbackQuery after a while; the exact time is unpublished.
    callback_answer_timeout: float = 15.0
    # Telegram requires HTTPS webhooks; loopback tests have no TLS, so plain HTTP is allowed here.
    allow_http_webhook: bool = True
    webhook_retry_base: float = 0.5
    webhook_retry_max: float = 30.0
    webhook_timeout: float = 10.0
    max_log: int = 20_000


class World:
    """Everything the emulator knows: the Emulator is a World, and its Bot API parts share it.
    ``_init_state`` (on reset) replaces every container, so parts look them up each time."""

    def __init__(self, config: EmulatorConfig, token: str) -> None:
        self.config = config
        self.limiter = RateLimiter(self.config.limits)
        self.default_token = token
        self.closing = False
        self._init_state()

    def _init_state(self) -> None:
        self.ids = IdSource()
        self.bots: dict[str, BotState] = {}
        self.users: dict[int, User] = {}
        self.chats: dict[int, Chat] = {}
        self.private: dict[tuple[str, int], Chat] = {}
        self.files: dict[str, StoredFile] = {}
        self.files_by_path: dict[str, StoredFile] = {}
        self.events: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.stats: Counter[str] = Counter()
        self.calls_per_method: Counter[str] = Counter()
        self._signal = asyncio.Event()
        self.limiter.reset()

    # ---------------------------------------------------------------- bots

    def register_bot(
        self, token: str, username: str = "emulated_bot", first_name: str = "Emulated Bot"
    ) -> BotState:
        """Register a bot token; the bot's user id is the number before the colon, as aiogram
        assumes."""
        prefix = token.split(":", 1)[0]
        if not prefix.isdigit() or ":" not in token:
            raise ControlError(400, "a token looks like <digits>:<secret>")
        user = User(id=int(prefix), first_name=first_name, username=username, is_bot=True)
        self.users[user.id] = user
        state = BotState(token=token, user=user)
        self.bots[token] = state
        return state

    @property
    def default_bot(self) -> BotState:
        """The bot registered at start-up."""
        return self.bots[self.default_token]

    def bot(self, token: str | None) -> BotState:
        """A registered bot by token (the default bot when None)."""
        state = self.bots.get(token or self.default_token)
        if state is None:
            raise ControlError(404, "unknown bot token")
        return state

    # ---------------------------------------------------------------- events for the control API

    def _notify(self) -> None:
        self._signal.set()
        self._signal = asyncio.Event()

    def emit(self, kind: str, chat: Chat | None, **data: Any) -> dict[str, Any]:
        """Record an event for the control API (with the chat and its bot) and wake waiters."""
        event: dict[str, Any] = {"cursor": len(self.events) + 1, "type": kind, "time": time.time()}
        if chat is not None:
            event["chat_id"] = chat.id
            if chat.bot_token is not None:
                event["bot_id"] = self.bots[chat.bot_token].user.id
        event.update(data)
        self.events.append(event)
        self._notify()
        return event

    async def wait_signal(self, timeout: float) -> None:  # noqa: ASYNC109 - a poll length
        """Wait until something happens (a new event) or the timeout passes."""
        signal = self._signal
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signal.wait(), timeout)

    # ---------------------------------------------------------------- messages and topics

    def post(
        self,
        chat: Chat,
        sender: User,
        from_bot: bool,
        content: dict[str, Any],
        thread_id: int | None,
        reply_to: StoredMessage | None,
        inline_markup: dict[str, Any] | None = None,
        chat_keyboard: dict[str, Any] | None = None,
        protect: bool = False,
        service: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> StoredMessage:
        """Store a message in a chat as Telegram would form it (thread, reply, markup) and record
        the event; handing it to bots as an update is the caller\'s part (`deliver`)."""
        message_id = chat.new_message_id()
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": sender.to_api(),
            "chat": chat.to_api(),
            "date": now(),
        }
        if "forum_topic_created" in content:
            thread_id = message_id
        anchor = reply_to
        if chat.is_forum and thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
            if anchor is None and thread_id != message_id:
                # Inside a topic every message replies to the topic's creation message.
                anchor = chat.messages.get(thread_id)
        elif chat.type == "supergroup" and reply_to is not None:
            # A reply outside topics starts a reply thread: message_thread_id without
            # is_topic_message, which bots must not use as a topic id.
            message["message_thread_id"] = reply_to.message.get(
                "message_thread_id", reply_to.message_id
            )
        if anchor is not None:
            quoted = dict(anchor.message)
            quoted.pop("reply_to_message", None)
            message["reply_to_message"] = quoted
        message.update(content)
        if extra:
            message.update(extra)
        if inline_markup and inline_markup.get("inline_keyboard"):
            message["reply_markup"] = inline_markup
        if protect:
            message["has_protected_content"] = True
        stored = StoredMessage(
            message=message,
            sender_id=sender.id,
            from_bot=from_bot,
            thread_id=thread_id if chat.is_forum else None,
            chat_keyboard=chat_keyboard,
            service=service,
        )
        chat.messages[message_id] = stored
        event = self.emit(
            "message", chat, message=message, from_bot=from_bot, chat_keyboard=chat_keyboard
        )
        stored.cursor = event["cursor"]
        return stored

    def deliver(self, chat: Chat, kind: str, payload: dict[str, Any]) -> None:
        """Queue an update for every bot that sees this chat."""
        if chat.type == "private":
            tokens = [chat.bot_token] if chat.bot_token else []
        else:
            tokens = [
                t
                for t, b in self.bots.items()
                if b.user.id in chat.members and _bot_sees(b, chat, payload)
            ]
        for token in tokens:
            if token in self.bots and self.bots[token].push_update(kind, payload) is not None:
                self.stats["updates"] += 1

    def resolve_chat(self, state: BotState, params: Params, name: str = "chat_id") -> Chat:
        """The chat a Bot API call names in ``name`` (an id or a public @username), with
        Telegram\'s errors for one the bot cannot reach."""
        raw = params.str(name)
        if raw is None or raw == "":
            raise bad_request(f"{name} is empty")
        raw = raw.strip()
        chat: Chat | None
        if raw.startswith("@"):
            # Telegram resolves @username for public groups and channels only, never users.
            username = raw[1:].lower()
            chat = next(
                (c for c in self.chats.values() if (c.username or "").lower() == username), None
            )
        else:
            try:
                chat_id = int(raw)
            except ValueError:
                raise bad_request("chat not found") from None
            if chat_id > 0:
                chat = self.private.get((state.token, chat_id))
                if chat is None and chat_id in self.users and chat_id != state.user.id:
                    user = self.users[chat_id]
                    if user.deactivated:
                        raise forbidden("user is deactivated")
                    raise forbidden("bot can't initiate conversation with a user")
            else:
                chat = self.chats.get(chat_id)
        if chat is None:
            raise bad_request("chat not found")
        if chat.type != "private" and state.user.id not in chat.members:
            kind = "supergroup chat" if chat.type == "supergroup" else "group chat"
            raise forbidden(f"bot is not a member of the {kind}")
        return chat

    def create_topic(
        self,
        chat: Chat,
        creator: User,
        name: str,
        icon_color: int,
        emoji_id: str | None,
        from_bot: bool,
    ) -> ForumTopic:
        """Open a forum topic: its forum_topic_created service message, the topic and its event;
        bots get the service message as an update only when a user opened the topic."""
        created: dict[str, Any] = {"name": name, "icon_color": icon_color}
        if emoji_id:
            created["icon_custom_emoji_id"] = emoji_id
        stored = self.post(
            chat, creator, from_bot, {"forum_topic_created": created}, None, None, service=True
        )
        topic = ForumTopic(stored.message_id, name, icon_color, emoji_id, creator_id=creator.id)
        chat.topics[topic.message_thread_id] = topic
        self.emit("topic_created", chat, topic=topic.to_api())
        if not from_bot:
            self.deliver(chat, "message", stored.message)
        return topic

    def remove_topic(self, chat: Chat, thread_id: int) -> None:
        """Delete a forum topic and its messages; later sends get "message thread not found"."""
        if chat.topics.pop(thread_id, None) is None:
            raise ControlError(404, "no such topic")
        for stored in chat.messages.values():
            if stored.thread_id == thread_id:
                stored.deleted = True
        self.emit("topic_deleted", chat, thread_id=thread_id)


def nonempty(key: str, value: list[Any]) -> dict[str, Any]:
    """An optional message field: ``{key: value}``, or nothing when the value is empty."""
    return {key: value} if value else {}


def _bot_sees(state: BotState, chat: Chat, message: dict[str, Any]) -> bool:
    """Privacy mode (on by default): in groups a non-admin bot sees only what concerns it."""
    if state.user.id in chat.admins:
        return True
    if any(k in message for k in SERVICE_KEYS):
        return True
    replied = message.get("reply_to_message") or {}
    if (replied.get("from") or {}).get(
        "id"
    ) == state.user.id and "forum_topic_created" not in replied:
        return True
    text = message.get("text") or message.get("caption") or ""
    username = (state.user.username or "").lower()
    for entity in message.get("entities") or message.get("caption_entities") or []:
        piece = text[entity["offset"] : entity["offset"] + entity["length"]].lower()
        if entity["type"] == "bot_command" and ("@" not in piece or piece.endswith("@" + username)):
            return True
        if entity["type"] == "mention" and piece == "@" + username:
            return True
    return False

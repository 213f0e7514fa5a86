"""In-memory world of the emulator: bots, users, chats, forum topics, messages, files, updates."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import time
from dataclasses import dataclass, field
from typing import Any

# Colours Telegram allows for forum topic icons (Bot API, createForumTopic).
TOPIC_ICON_COLORS = (7322096, 16766590, 13338331, 9367192, 16749490, 16478047)
# Longest forum topic name; Telegram cuts a longer one to this many characters.
MAX_TOPIC_NAME = 128
_TRIMMED = " \t\r\n\v\0"
# Update kinds delivered when allowed_updates is empty (Telegram leaves these three out).
NOT_DEFAULT_UPDATES = {"chat_member", "message_reaction", "message_reaction_count"}


def now() -> int:
    """Current Unix time in seconds, the unit of every Telegram date."""
    return int(time.time())


def clean_topic_name(name: str) -> str:
    """A topic name as Telegram stores it: trimmed, cut (not refused) after 128 characters,
    then each run of spaces and newlines made one space."""
    cut = name.strip(_TRIMMED)[:MAX_TOPIC_NAME].strip(_TRIMMED)
    return re.sub(r"[ \n]+", " ", cut).strip(_TRIMMED)


@dataclass
class User:
    """A Telegram account: a simulated citizen, an officer or a bot."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_bot: bool = False
    is_premium: bool = False
    # A user who hides their account on forwards appears as forward_origin "hidden_user".
    hide_forwards: bool = False
    deactivated: bool = False

    def to_api(self) -> dict[str, Any]:
        """The User object as the Bot API serialises it."""
        data: dict[str, Any] = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        if self.is_premium:
            data["is_premium"] = True
        return data

    @property
    def full_name(self) -> str:
        """First and last name joined like Telegram shows them."""
        return f"{self.first_name} {self.last_name}" if self.last_name else self.first_name


@dataclass
class ForumTopic:
    """A topic of a forum supergroup; its id is the id of its creation service message."""

    message_thread_id: int
    name: str
    icon_color: int
    icon_custom_emoji_id: str | None = None
    closed: bool = False
    # Who opened the topic: they may still post into it and manage it once it is closed.
    creator_id: int | None = None

    def to_api(self) -> dict[str, Any]:
        """The ForumTopic object."""
        data: dict[str, Any] = {
            "message_thread_id": self.message_thread_id,
            "name": self.name,
            "icon_color": self.icon_color,
        }
        if self.icon_custom_emoji_id:
            data["icon_custom_emoji_id"] = self.icon_custom_emoji_id
        return data


@dataclass
class StoredMessage:
    """One message in a chat, with what the emulator needs beyond the Bot API object."""

    message: dict[str, Any]
    sender_id: int
    from_bot: bool
    thread_id: int | None = None
    deleted: bool = False
    edits: list[dict[str, Any]] = field(default_factory=list)
    # Reply keyboards are not part of the returned Message but a user sees them.
    chat_keyboard: dict[str, Any] | None = None
    service: bool = False  # a service message such as forum_topic_created
    consumed: bool = False  # taken by a wait_bot_message call
    cursor: int = 0

    @property
    def message_id(self) -> int:
        """The per-chat message id."""
        return int(self.message["message_id"])

    def to_transcript(self) -> dict[str, Any]:
        """A JSON view for tests and the demo page: the message plus emulator bookkeeping."""
        return {
            "message": self.message,
            "from_bot": self.from_bot,
            "sender_id": self.sender_id,
            "thread_id": self.thread_id,
            "deleted": self.deleted,
            "edits": self.edits,
            "chat_keyboard": self.chat_keyboard,
            "service": self.service,
            "cursor": self.cursor,
        }


@dataclass
class Chat:
    """A private chat, group or supergroup (optionally a forum) with its own message store."""

    id: int
    type: str
    title: str | None = None
    username: str | None = None
    is_forum: bool = False
    # For private chats, the user on the other side.
    user: User | None = None
    members: set[int] = field(default_factory=set)
    admins: set[int] = field(default_factory=set)
    # Admins promoted without the can_manage_topics right (every other admin has it in a forum).
    admins_without_topic_rights: set[int] = field(default_factory=set)
    owner_id: int | None = None
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    topics: dict[int, ForumTopic] = field(default_factory=dict)
    pinned: list[int] = field(default_factory=list)
    next_message_id: int = 1
    # Private chats only: the bot on the other side and whether the user blocked it.
    bot_token: str | None = None
    blocked: bool = False

    def new_message_id(self) -> int:
        """Allocate the next per-chat message id (ids only grow, deletions leave gaps)."""
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id

    def to_api(self) -> dict[str, Any]:
        """The short Chat object embedded in messages."""
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.type == "private" and self.user is not None:
            data["first_name"] = self.user.first_name
            if self.user.last_name:
                data["last_name"] = self.user.last_name
            if self.user.username:
                data["username"] = self.user.username
        else:
            data["title"] = self.title or ""
            if self.username:
                data["username"] = self.username
        if self.is_forum:
            data["is_forum"] = True
        return data

    def chat_instance(self) -> str:
        """A stable opaque identifier of this chat for callback queries."""
        digest = hashlib.sha256(f"chat-instance:{self.id}".encode()).hexdigest()
        return str(int(digest[:15], 16))

    def can_manage_topics(self, user_id: int) -> bool:
        """Whether the user is the owner or an admin with the can_manage_topics right."""
        if user_id == self.owner_id:
            return True
        return user_id in self.admins and user_id not in self.admins_without_topic_rights

    def may_post_in(self, topic: ForumTopic, user_id: int) -> bool:
        """Whether the user may post into the topic: anyone while it is open; once closed, only
        its creator and admins with can_manage_topics (Telegram's TOPIC_CLOSED for others)."""
        return not topic.closed or topic.creator_id == user_id or self.can_manage_topics(user_id)

    def live(self, message_id: int) -> StoredMessage | None:
        """The message if it exists and was not deleted."""
        stored = self.messages.get(message_id)
        return stored if stored is not None and not stored.deleted else None


@dataclass
class StoredFile:
    """An uploaded or user-sent file, downloadable through getFile and /file/bot<token>/."""

    file_id: str
    file_unique_id: str
    kind: str
    data: bytes
    file_path: str
    file_name: str | None = None
    mime_type: str | None = None
    width: int = 0
    height: int = 0
    duration: int = 0


@dataclass
class CallbackRecord:
    """A callback query waiting for answerCallbackQuery."""

    id: str
    created: float
    answered: bool = False


@dataclass
class BotState:
    """One registered bot token: its user, updates queue, webhook and commands."""

    token: str
    user: User
    updates: list[dict[str, Any]] = field(default_factory=list)
    next_update_id: int = 1
    allowed_updates: list[str] = field(default_factory=list)
    webhook_url: str = ""
    webhook_secret: str | None = None
    webhook_max_connections: int = 40
    last_error_date: int | None = None
    last_error_message: str | None = None
    commands: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    callbacks: dict[str, CallbackRecord] = field(default_factory=dict)
    update_event: asyncio.Event = field(default_factory=asyncio.Event)
    # The running getUpdates; its result, when ended early, is the 409 description it gets.
    active_poll: asyncio.Future[str | None] | None = None
    webhook_task: asyncio.Task[None] | None = None

    def wants(self, kind: str) -> bool:
        """Whether an update of this kind passes the remembered allowed_updates filter."""
        if self.allowed_updates:
            return kind in self.allowed_updates
        return kind not in NOT_DEFAULT_UPDATES

    def push_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Queue an update (if allowed) with the next id and wake pollers and the webhook."""
        if not self.wants(kind):
            return None
        update = {"update_id": self.next_update_id, kind: payload}
        self.next_update_id += 1
        self.updates.append(update)
        self.update_event.set()
        return update


class IdSource:
    """Monotonic id generators shared by the emulator (file ids, callback ids, user ids)."""

    def __init__(self) -> None:
        self._files = itertools.count(1)
        self._callbacks = itertools.count(1)
        self._users = itertools.count(100_000_001)
        self._groups = itertools.count(1)

    def file_ids(self, kind: str) -> tuple[str, str]:
        """A (file_id, file_unique_id) pair; ids look opaque like Telegram's."""
        n = next(self._files)
        digest = hashlib.sha256(f"{kind}:{n}".encode()).hexdigest()
        return f"AgAC{kind[:2].upper()}{n:06d}{digest[:24]}", f"AQAD{digest[24:36]}"

    def callback_id(self) -> str:
        """A callback query id (a large decimal number as a string, like Telegram's)."""
        return str(4_400_000_000_000_000_000 + next(self._callbacks))

    def user_id(self) -> int:
        """A fresh user id for users created without one."""
        return next(self._users)

    def supergroup_id(self) -> int:
        """A supergroup id in Telegram's -100xxxxxxxxxx form."""
        return -1_001_000_000_000 - next(self._groups)

    def group_id(self) -> int:
        """A basic group id (small negative number)."""
        return -400_000_000 - next(self._groups)

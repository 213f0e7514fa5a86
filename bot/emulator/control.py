"""The control API's side of the emulator, what tests and the demo do: build the world (users,
groups, forums, topics), act in it as its users (send, edit, press buttons, block the bot) and
read it back (transcripts, the bot's next message, the event log)."""

from __future__ import annotations

import time
from typing import Any

from bot.emulator.entities import detect_entities, strip_text
from bot.emulator.errors import ControlError
from bot.emulator.files import media_object, store_upload
from bot.emulator.params import Upload
from bot.emulator.state import (
    TOPIC_ICON_COLORS,
    CallbackRecord,
    Chat,
    StoredMessage,
    User,
    clean_topic_name,
    now,
)
from bot.emulator.world import World, nonempty


class Control(World):
    """The world with the operations of the control API (server.py's /_emulator routes)."""

    # ---------------------------------------------------------------- world building

    def create_user(
        self,
        user_id: int | None = None,
        first_name: str = "Citizen",
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
        is_premium: bool = False,
        hide_forwards: bool = False,
    ) -> User:
        """Create (or update) a simulated user."""
        uid = user_id if user_id is not None else self.ids.user_id()
        if uid <= 0:
            raise ControlError(400, "user ids are positive")
        user = User(
            id=uid,
            first_name=first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
            is_premium=is_premium,
            hide_forwards=hide_forwards,
        )
        self.users[uid] = user
        return user

    def user(self, user_id: int) -> User:
        """A user by id; unknown ids are created on first use so tests stay short."""
        found = self.users.get(user_id)
        if found is None:
            found = self.create_user(user_id, first_name=f"User {user_id}")
        return found

    def create_chat(
        self,
        chat_type: str = "supergroup",
        title: str = "Example City duty officers",
        is_forum: bool = False,
        members: list[int] | None = None,
        admins: list[int] | None = None,
        owner_id: int | None = None,
        chat_id: int | None = None,
        username: str | None = None,
        bot_tokens: list[str] | None = None,
        bot_is_admin: bool = True,
        bot_can_manage_topics: bool = True,
    ) -> Chat:
        """Create a group or supergroup (a forum when is_forum) with members; bots join it (as
        admins with can_manage_topics unless told otherwise)."""
        if chat_type not in {"group", "supergroup"}:
            raise ControlError(400, "chat_type is group or supergroup")
        if is_forum and chat_type != "supergroup":
            raise ControlError(400, "only supergroups can be forums")
        if chat_id is None:
            chat_id = self.ids.supergroup_id() if chat_type == "supergroup" else self.ids.group_id()
        if chat_id >= 0:
            raise ControlError(400, "group ids are negative")
        chat = Chat(id=chat_id, type=chat_type, title=title, is_forum=is_forum, username=username)
        # Message 1 of a real group is its creation service message, so a topic is never 1.
        chat.next_message_id = 2
        for uid in [*(members or []), *(admins or [])]:
            chat.members.add(self.user(uid).id)
        chat.admins.update(admins or [])
        if owner_id is None and admins:
            owner_id = admins[0]
        chat.owner_id = owner_id
        if chat.owner_id is not None:
            chat.members.add(self.user(chat.owner_id).id)
            chat.admins.add(chat.owner_id)
        for token in bot_tokens or [self.default_token]:
            bot_id = self.bot(token).user.id
            chat.members.add(bot_id)
            if bot_is_admin:
                chat.admins.add(bot_id)
                if not bot_can_manage_topics:
                    chat.admins_without_topic_rights.add(bot_id)
        self.chats[chat_id] = chat
        self.emit("chat_created", chat, info=chat.to_api())
        return chat

    def private_chat(self, user_id: int, token: str | None = None, create: bool = True) -> Chat:
        """The private chat between a user and a bot (created when the user first writes)."""
        state = self.bot(token)
        key = (state.token, user_id)
        chat = self.private.get(key)
        if chat is None:
            if not create:
                raise ControlError(404, "no such private chat")
            user = self.user(user_id)
            chat = Chat(id=user_id, type="private", user=user, bot_token=state.token)
            chat.members.update({user_id, state.user.id})
            self.private[key] = chat
        return chat

    def _control_chat(self, chat_id: int, token: str | None = None) -> Chat:
        if chat_id > 0:
            return self.private_chat(chat_id, token)
        chat = self.chats.get(chat_id)
        if chat is None:
            raise ControlError(404, f"no chat {chat_id}")
        return chat

    def delete_chat(self, chat_id: int, token: str | None = None) -> None:
        """Make a chat disappear: afterwards the Bot API answers "chat not found"."""
        if chat_id > 0:
            self.private.pop((self.bot(token).token, chat_id), None)
            self.users.pop(chat_id, None)
        elif self.chats.pop(chat_id, None) is None:
            raise ControlError(404, f"no chat {chat_id}")
        self.emit("chat_deleted", None, chat_id=chat_id)

    def age_message(
        self, chat_id: int, message_id: int, seconds: int, token: str | None = None
    ) -> dict[str, Any]:
        """Make a message look ``seconds`` older (its date moves back), e.g. past the 48 hours
        after which deleteMessage refuses it."""
        if seconds < 0:
            raise ControlError(400, "seconds must not be negative")
        chat = self._control_chat(chat_id, token)
        stored = chat.messages.get(message_id)
        if stored is None:
            raise ControlError(404, f"no message {message_id} in chat {chat_id}")
        stored.message["date"] = int(stored.message["date"]) - seconds
        return stored.to_transcript()

    def create_topic_as_user(
        self, user_id: int, chat_id: int, name: str, icon_color: int = TOPIC_ICON_COLORS[0]
    ) -> dict[str, Any]:
        """A member (an officer) opens a topic in the forum from their app."""
        chat = self._control_chat(chat_id)
        user = self._member(chat, user_id)
        if not chat.is_forum:
            raise ControlError(400, f"chat {chat_id} is not a forum")
        cleaned = clean_topic_name(name)
        if not cleaned:
            raise ControlError(400, "name must be non-empty")
        return self.create_topic(chat, user, cleaned, icon_color, None, from_bot=False).to_api()

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        """Delete a forum topic as an admin would; later sends get "message thread not found"."""
        self.remove_topic(self._control_chat(chat_id), thread_id)

    def set_topic_closed(self, chat_id: int, thread_id: int, closed: bool) -> None:
        """Close or reopen a topic as an admin would."""
        chat = self._control_chat(chat_id)
        topic = chat.topics.get(thread_id)
        if topic is None:
            raise ControlError(404, "no such topic")
        topic.closed = closed
        self.emit("topic_closed" if closed else "topic_reopened", chat, thread_id=thread_id)

    # ---------------------------------------------------------------- reading it back

    def transcript(self, chat_id: int, token: str | None = None) -> list[dict[str, Any]]:
        """Every message of a chat in order, both directions, with edits and deletions."""
        chat = self._control_chat(chat_id, token)
        return [m.to_transcript() for m in sorted(chat.messages.values(), key=lambda m: m.cursor)]

    def topics(self, chat_id: int) -> list[dict[str, Any]]:
        """The forum topics of a supergroup, with their closed flag."""
        chat = self._control_chat(chat_id)
        return [{**t.to_api(), "is_closed": t.closed} for t in chat.topics.values()]

    async def events_after(
        self,
        cursor: int,
        timeout: float = 0.0,  # noqa: ASYNC109 - long-poll length, part of the API
        limit: int = 500,
    ) -> list[dict[str, Any]]:
        """Events with a cursor above ``cursor``, long-polling up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.events[cursor : cursor + limit] if cursor >= 0 else []
            remaining = deadline - time.monotonic()
            if found or remaining <= 0 or self.closing:
                return found
            await self.wait_signal(remaining)

    async def wait_bot_message(
        self,
        chat_id: int,
        thread_id: int | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - how long to wait, part of the API
        token: str | None = None,
    ) -> dict[str, Any]:
        """The oldest bot message in a chat (or topic) not yet returned by this call."""
        deadline = time.monotonic() + timeout
        while True:
            chat = self._control_chat(chat_id, token)
            pending = [
                m
                for m in chat.messages.values()
                if m.from_bot
                and not m.service
                and not m.consumed
                and (thread_id is None or m.thread_id == thread_id)
            ]
            if pending:
                first = min(pending, key=lambda m: m.cursor)
                first.consumed = True
                return first.to_transcript()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closing:
                raise ControlError(408, f"no bot message in chat {chat_id} within {timeout} s")
            await self.wait_signal(remaining)

    # ---------------------------------------------------------------- simulated users acting

    def _member(self, chat: Chat, user_id: int) -> User:
        user = self.user(user_id)
        if chat.type != "private" and user_id not in chat.members:
            raise ControlError(403, f"user {user_id} is not a member of chat {chat.id}")
        if user.deactivated:
            raise ControlError(403, f"user {user_id} is deactivated")
        return user

    def user_send(
        self,
        user_id: int,
        kind: str = "text",
        /,
        chat_id: int | None = None,
        thread_id: int | None = None,
        reply_to: int | None = None,
        token: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A user sends a message (text, photo, document, voice, sticker, location, contact)."""
        chat = (
            self.private_chat(user_id, token)
            if chat_id is None or chat_id == user_id
            else self._control_chat(chat_id, token)
        )
        user = self._member(chat, user_id)
        if chat.type == "private" and chat.blocked:
            # Writing to a bot you blocked unblocks it first in the official apps.
            self.set_blocked(user_id, False, token)
        content = self._user_content(kind, fields)
        topic_thread = self._user_thread(chat, user, thread_id)
        target = None
        if reply_to is not None:
            target = chat.live(reply_to)
            if target is None:
                raise ControlError(404, f"no message {reply_to} to reply to")
            if topic_thread is None and target.thread_id is not None:
                # Replying to a topic message writes into that topic.
                topic_thread = self._user_thread(chat, user, target.thread_id)
        stored = self.post(chat, user, False, content, topic_thread, target)
        self.deliver(chat, "message", stored.message)
        return stored.to_transcript()

    def _user_thread(self, chat: Chat, user: User, thread_id: int | None) -> int | None:
        if thread_id is None or not chat.is_forum or thread_id == 1:
            return None
        topic = chat.topics.get(thread_id)
        if topic is None:
            raise ControlError(404, f"no topic {thread_id} in chat {chat.id}")
        if not chat.may_post_in(topic, user.id):
            raise ControlError(403, "the topic is closed")
        return thread_id

    def _user_content(self, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        if kind == "text":
            text = str(fields.get("text", ""))
            entities = list(fields.get("entities") or [])
            text, entities = strip_text(text, entities)
            if not text:
                raise ControlError(400, "message text is empty")
            return {"text": text, **nonempty("entities", detect_entities(text, entities))}
        if kind == "location":
            return {
                "location": {
                    "latitude": float(fields["latitude"]),
                    "longitude": float(fields["longitude"]),
                }
            }
        if kind == "contact":
            contact: dict[str, Any] = {
                "phone_number": str(fields["phone_number"]),
                "first_name": str(fields.get("first_name") or "Contact"),
            }
            for key in ("last_name", "user_id", "vcard"):
                if fields.get(key) is not None:
                    contact[key] = fields[key]
            return {"contact": contact}
        if kind not in {"photo", "document", "voice", "sticker"}:
            raise ControlError(400, f"unknown message kind {kind!r}")
        data = fields.get("data")
        if isinstance(data, str):
            data = data.encode()
        upload = Upload(
            filename=str(fields.get("file_name") or _default_name(kind)),
            content_type=fields.get("mime_type"),
            data=bytes(data or _placeholder_bytes(kind)),
        )
        stored_file = store_upload(self, upload, kind)
        if kind == "voice" and fields.get("duration"):
            stored_file.duration = int(fields["duration"])
        content = {kind: media_object(stored_file, kind)}
        if kind == "sticker" and fields.get("emoji"):
            content["sticker"]["emoji"] = str(fields["emoji"])
        caption = fields.get("caption")
        if caption and kind != "sticker":
            text, entities = strip_text(str(caption), [])
            content["caption"] = text
            content.update(nonempty("caption_entities", detect_entities(text, entities)))
        return content

    def user_edit(
        self,
        user_id: int,
        message_id: int,
        text: str,
        chat_id: int | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """A user edits their own text message; the bot gets an edited_message update."""
        chat = self._control_chat(chat_id if chat_id is not None else user_id, token)
        stored = chat.live(message_id)
        if stored is None or stored.from_bot or stored.sender_id != user_id:
            raise ControlError(404, "the user has no such message to edit")
        if "text" not in stored.message:
            raise ControlError(400, "only text messages can be edited here")
        new_text, entities = strip_text(text, [])
        if not new_text:
            raise ControlError(400, "message text is empty")
        stored.edits.append({"text": stored.message["text"], "date": now()})
        stored.message["text"] = new_text
        stored.message.pop("entities", None)
        stored.message.update(nonempty("entities", detect_entities(new_text, entities)))
        stored.message["edit_date"] = now()
        self.emit("edited", chat, message=stored.message, from_bot=False)
        self.deliver(chat, "edited_message", stored.message)
        return stored.to_transcript()

    def user_press(
        self,
        user_id: int,
        message_id: int,
        text: str | None = None,
        data: str | None = None,
        chat_id: int | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """A user presses an inline button (found by its text or callback data)."""
        chat = self._control_chat(chat_id if chat_id is not None else user_id, token)
        self._member(chat, user_id)
        stored = chat.messages.get(message_id)
        if stored is None:
            raise ControlError(404, f"no message {message_id} in chat {chat.id}")
        rows = (stored.message.get("reply_markup") or {}).get("inline_keyboard") or []
        for row in rows:
            for button in row:
                if (text is not None and button.get("text") == text) or (
                    data is not None and button.get("callback_data") == data
                ):
                    if "callback_data" not in button:
                        raise ControlError(400, "that button is not a callback button")
                    return self._callback(chat, user_id, stored, button["callback_data"])
        raise ControlError(404, "no such button on the message")

    def inject_callback(
        self,
        user_id: int,
        message_id: int,
        data: str,
        chat_id: int | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """A raw callback query with arbitrary data (what a forged client could send)."""
        chat = self._control_chat(chat_id if chat_id is not None else user_id, token)
        stored = chat.messages.get(message_id)
        if stored is None:
            raise ControlError(404, f"no message {message_id} in chat {chat.id}")
        return self._callback(chat, user_id, stored, data)

    def _callback(
        self, chat: Chat, user_id: int, stored: StoredMessage, data: str
    ) -> dict[str, Any]:
        user = self.user(user_id)
        if stored.deleted:
            # Telegram describes a message the bot can no longer see as InaccessibleMessage.
            message: dict[str, Any] = {
                "chat": chat.to_api(),
                "message_id": stored.message_id,
                "date": 0,
            }
        else:
            message = stored.message
        sender_bot = next(
            (b for b in self.bots.values() if b.user.id == stored.sender_id), None
        ) or (self.bots.get(chat.bot_token or "") or self.default_bot)
        query_id = self.ids.callback_id()
        query = {
            "id": query_id,
            "from": user.to_api(),
            "message": message,
            "chat_instance": chat.chat_instance(),
            "data": data,
        }
        sender_bot.callbacks[query_id] = CallbackRecord(query_id, time.monotonic())
        if sender_bot.push_update("callback_query", query) is not None:
            self.stats["updates"] += 1
        self.emit("callback_query", chat, query=query, message_id=stored.message_id)
        return query

    def set_blocked(self, user_id: int, blocked: bool, token: str | None = None) -> None:
        """A user blocks or unblocks the bot; the bot gets a my_chat_member update."""
        chat = self.private_chat(user_id, token)
        if chat.blocked == blocked:
            return
        chat.blocked = blocked
        state = self.bot(chat.bot_token)
        old, new = ("member", "kicked") if blocked else ("kicked", "member")
        payload = {
            "chat": chat.to_api(),
            "from": self.user(user_id).to_api(),
            "date": now(),
            "old_chat_member": _member_obj(state.user, old),
            "new_chat_member": _member_obj(state.user, new),
        }
        if state.push_update("my_chat_member", payload) is not None:
            self.stats["updates"] += 1
        self.emit("blocked" if blocked else "unblocked", chat, user_id=user_id)

    def set_deactivated(self, user_id: int, deactivated: bool = True) -> None:
        """Deactivate (delete) a user's account; sends to them fail with 403."""
        self.user(user_id).deactivated = deactivated
        self.emit("deactivated", None, user_id=user_id, deactivated=deactivated)


def _member_obj(user: User, status: str) -> dict[str, Any]:
    data: dict[str, Any] = {"status": status, "user": user.to_api()}
    if status == "kicked":
        data["until_date"] = 0
    return data


def _default_name(kind: str) -> str:
    return {"photo": "photo.jpg", "voice": "voice.ogg", "sticker": "sticker.webp"}.get(
        kind, "file.bin"
    )


def _placeholder_bytes(kind: str) -> bytes:
    return f"emulated {kind} content".encode()

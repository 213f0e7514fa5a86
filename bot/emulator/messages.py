"""A bot's messages: sending (text, media, location, contact, chat actions), editing, deleting,
copying and forwarding, and answering callback queries."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from bot.emulator.entities import (
    EntityParseError,
    detect_entities,
    parse_html,
    parse_markdown,
    parse_markdown_v2,
    strip_text,
)
from bot.emulator.errors import bad_request, forbidden, too_many_requests
from bot.emulator.files import input_file, media_object
from bot.emulator.markup import validate_inline_keyboard
from bot.emulator.params import Params
from bot.emulator.state import BotState, Chat, StoredMessage, now
from bot.emulator.world import World, nonempty

MAX_TEXT = 4096
MAX_CAPTION = 1024
# Keys that make up a message's content; copyMessage/forwardMessage carry exactly these.
CONTENT_KEYS = (
    "text",
    "entities",
    "photo",
    "document",
    "voice",
    "sticker",
    "location",
    "contact",
    "caption",
    "caption_entities",
)
CHAT_ACTIONS = {
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
}
MAX_DELETE_AGE = 48 * 3600  # seconds after which deleteMessage refuses a message


class MessageMethods:
    """The message methods; the sends share one pipeline (`_send`), the edits another."""

    def __init__(self, world: World) -> None:
        self.world = world

    # ---------------------------------------------------------------- the send pipeline

    def _send_target(self, state: BotState, params: Params) -> Chat:
        """The chat a send method writes to, refusing blocked and deactivated users."""
        chat = self.world.resolve_chat(state, params)
        if chat.type == "private" and chat.user is not None:
            if chat.user.deactivated:
                raise forbidden("user is deactivated")
            if chat.blocked:
                raise forbidden("bot was blocked by the user")
        return chat

    def _thread(self, state: BotState, chat: Chat, params: Params) -> int | None:
        thread_id = params.int("message_thread_id")
        if thread_id is None or chat.type == "private":
            return None
        if not chat.is_forum:
            if chat.live(thread_id) is None:
                raise bad_request("message thread not found")
            return None
        # General (thread 1) is not a topic a bot can name: Telegram answers as for a missing one.
        topic = chat.topics.get(thread_id)
        if topic is None:
            raise bad_request("message thread not found")
        if not chat.may_post_in(topic, state.user.id):
            raise bad_request("TOPIC_CLOSED")
        return thread_id

    def _reply_target(
        self, state: BotState, chat: Chat, params: Params, thread_id: int | None
    ) -> tuple[StoredMessage | None, int | None]:
        reply = params.json("reply_parameters", "reply parameters")
        if reply is None and params.has("reply_to_message_id"):
            reply = {
                "message_id": params.int("reply_to_message_id"),
                "allow_sending_without_reply": params.bool("allow_sending_without_reply"),
            }
        if reply is None:
            return None, thread_id
        if not isinstance(reply, dict) or "message_id" not in reply:
            raise bad_request("can't parse reply parameters JSON object")
        other_chat = reply.get("chat_id")
        if other_chat is not None and str(other_chat) != str(chat.id):
            raise bad_request("message to be replied not found")
        target = chat.live(int(reply["message_id"]))
        if target is None:
            if reply.get("allow_sending_without_reply"):
                return None, thread_id
            raise bad_request("message to be replied not found")
        if chat.is_forum and thread_id is None and target.thread_id is not None:
            # Telegram puts a reply into the topic of the message it answers.
            topic = chat.topics.get(target.thread_id)
            if topic is not None and not chat.may_post_in(topic, state.user.id):
                raise bad_request("TOPIC_CLOSED")
            thread_id = target.thread_id
        return target, thread_id

    def _markup(self, params: Params) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        markup = params.json("reply_markup", "reply keyboard markup")
        if markup is None:
            return None, None
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            return validate_inline_keyboard(markup), None
        if "keyboard" in markup or "remove_keyboard" in markup or "force_reply" in markup:
            return None, markup
        raise bad_request("can't parse reply keyboard markup JSON object")

    def _format(
        self, params: Params, text_key: str, entities_key: str, caption: bool = False
    ) -> tuple[str, list[dict[str, Any]]]:
        text = params.str(text_key) or ""
        if not caption and not text:
            raise bad_request("message text is empty")
        parse_mode = (params.str("parse_mode") or "").strip()
        entities: list[dict[str, Any]] = []
        if parse_mode:
            mode = parse_mode.lower()
            parser = {
                "html": parse_html,
                "markdownv2": parse_markdown_v2,
                "markdown": parse_markdown,
            }.get(mode)
            if parser is None:
                raise bad_request("unsupported parse_mode")
            try:
                text, entities = parser(text)
            except EntityParseError as error:
                raise bad_request(f"can't parse entities: {error}") from None
            entities = self._resolve_mentions(entities)
        elif params.has(entities_key):
            given = params.json(entities_key, "entities")
            if not isinstance(given, list):
                raise bad_request(f"can't parse {entities_key} JSON object")
            entities = [e for e in given if isinstance(e, dict)]
        text, entities = strip_text(text, entities)
        if not caption and not text:
            # Text given but nothing left after parsing and trimming: Telegram words it apart
            # from a missing text.
            raise bad_request("text must be non-empty")
        if caption and len(text) > MAX_CAPTION:
            raise bad_request("message caption is too long")
        if not caption and len(text) > MAX_TEXT:
            raise bad_request("message is too long")
        return text, detect_entities(text, entities) if text else []

    def _resolve_mentions(self, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Telegram turns <a href="tg://user?id=N"> into a text_mention carrying the User
        # object; a user the server does not know silently loses the link.
        resolved = []
        for entity in entities:
            if entity.get("type") == "text_mention" and "user_id" in entity:
                user = self.world.users.get(int(entity.pop("user_id")))
                if user is None:
                    continue
                entity["user"] = user.to_api()
            resolved.append(entity)
        return resolved

    def _rate(self, state: BotState, chat: Chat, paid: bool = False) -> None:
        """Count one message (a send or an edit) against the chat's and the bot's flood limits."""
        retry = self.world.limiter.check(state.token, chat.id, chat.type == "private", paid)
        if retry is not None:
            raise too_many_requests(retry)

    async def _send(
        self, state: BotState, params: Params, build: Callable[[Chat], dict[str, Any]]
    ) -> dict[str, Any]:
        """Common pipeline of send methods: target, thread, reply, markup, content, limits."""
        chat = self._send_target(state, params)
        thread_id = self._thread(state, chat, params)
        reply_to, thread_id = self._reply_target(state, chat, params, thread_id)
        inline, keyboard = self._markup(params)
        content = build(chat)
        self._rate(state, chat, params.bool("allow_paid_broadcast"))
        stored = self.world.post(
            chat,
            state.user,
            True,
            content,
            thread_id,
            reply_to,
            inline,
            keyboard,
            protect=params.bool("protect_content"),
        )
        return stored.message

    # ---------------------------------------------------------------- sending

    async def m_sendMessage(self, state: BotState, params: Params) -> dict[str, Any]:
        """sendMessage."""

        def build(chat: Chat) -> dict[str, Any]:
            text, entities = self._format(params, "text", "entities")
            return {"text": text, **nonempty("entities", entities)}

        return await self._send(state, params, build)

    def _media_send(self, state: BotState, params: Params, kind: str) -> Any:
        def build(chat: Chat) -> dict[str, Any]:
            stored = input_file(self.world, params, kind, kind)
            if kind == "voice" and params.int("duration"):
                stored.duration = params.int("duration") or 0
            content: dict[str, Any] = {kind: media_object(stored, kind)}
            if kind != "sticker" and params.has("caption"):
                caption, entities = self._format(params, "caption", "caption_entities", True)
                if caption:
                    content["caption"] = caption
                    content.update(nonempty("caption_entities", entities))
            return content

        return self._send(state, params, build)

    async def m_sendPhoto(self, state: BotState, params: Params) -> dict[str, Any]:
        """sendPhoto."""
        return await self._media_send(state, params, "photo")

    async def m_sendDocument(self, state: BotState, params: Params) -> dict[str, Any]:
        """sendDocument."""
        return await self._media_send(state, params, "document")

    async def m_sendVoice(self, state: BotState, params: Params) -> dict[str, Any]:
        """sendVoice."""
        return await self._media_send(state, params, "voice")

    async def m_sendSticker(self, state: BotState, params: Params) -> dict[str, Any]:
        """sendSticker."""
        return await self._media_send(state, params, "sticker")

    async def m_sendLocation(self, state: BotState, params: Params) -> dict[str, Any]:
        """sendLocation."""

        def build(chat: Chat) -> dict[str, Any]:
            latitude, longitude = params.float("latitude"), params.float("longitude")
            if latitude is None or longitude is None:
                raise bad_request("wrong latitude or longitude specified")
            if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
                raise bad_request("wrong latitude or longitude specified")
            return {"location": {"latitude": latitude, "longitude": longitude}}

        return await self._send(state, params, build)

    async def m_sendContact(self, state: BotState, params: Params) -> dict[str, Any]:
        """sendContact."""

        def build(chat: Chat) -> dict[str, Any]:
            phone, first = params.str("phone_number"), params.str("first_name")
            if not phone or not first:
                raise bad_request("phone number and first name must be non-empty")
            contact = {"phone_number": phone, "first_name": first}
            if params.has("last_name"):
                contact["last_name"] = params.str("last_name") or ""
            return {"contact": contact}

        return await self._send(state, params, build)

    async def m_sendChatAction(self, state: BotState, params: Params) -> bool:
        """sendChatAction."""
        chat = self._send_target(state, params)
        action = params.str("action")
        if action not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        thread_id = self._thread(state, chat, params)
        self.world.emit("chat_action", chat, action=action, thread_id=thread_id)
        return True

    # ---------------------------------------------------------------- editing and deleting

    def _bot_message(self, state: BotState, chat: Chat, params: Params) -> StoredMessage:
        message_id = params.int("message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        stored = chat.live(message_id)
        if stored is None:
            raise bad_request("message to edit not found")
        if not stored.from_bot or stored.sender_id != state.user.id or stored.service:
            raise bad_request("message can't be edited")
        return stored

    def _record_edit(self, chat: Chat, stored: StoredMessage, changes: dict[str, Any]) -> None:
        keys = ("text", "entities", "caption", "caption_entities", "reply_markup")
        before = {k: stored.message[k] for k in keys if k in stored.message}
        stored.edits.append({"before": before, "date": now()})
        for key, value in changes.items():
            if value is None:
                stored.message.pop(key, None)
            else:
                stored.message[key] = value
        stored.message["edit_date"] = now()
        self.world.emit("edited", chat, message=stored.message, from_bot=True)

    def _edit_target(self, state: BotState, params: Params) -> tuple[Chat, StoredMessage]:
        """The chat and the bot's own message an edit method names."""
        if params.has("inline_message_id") and not params.has("chat_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        chat = self.world.resolve_chat(state, params)
        return chat, self._bot_message(state, chat, params)

    def _edit_markup(self, params: Params) -> dict[str, Any] | None:
        """The inline keyboard an edit sets (an empty one removes it)."""
        inline, _ = self._markup(params)
        return inline if inline and inline.get("inline_keyboard") else None

    def _apply_edit(
        self, state: BotState, chat: Chat, stored: StoredMessage, changes: dict[str, Any]
    ) -> Any:
        """Record an edit, refusing one that changes nothing, as Telegram does. An empty value
        (no entities, no caption, no keyboard) removes the field. An edit counts against the
        same flood limits as a send (Telegram answers 429 to frequent edits too)."""
        changes = {k: v or None for k, v in changes.items()}
        if all((stored.message.get(k) or None) == v for k, v in changes.items()):
            raise bad_request(
                "message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message"
            )
        self._rate(state, chat)
        self._record_edit(chat, stored, changes)
        return stored.message

    async def m_editMessageText(self, state: BotState, params: Params) -> Any:
        """editMessageText (chat messages; inline messages are not emulated)."""
        chat, stored = self._edit_target(state, params)
        if "text" not in stored.message:
            raise bad_request("there is no text in the message to edit")
        text, entities = self._format(params, "text", "entities")
        changes = {"text": text, "entities": entities, "reply_markup": self._edit_markup(params)}
        return self._apply_edit(state, chat, stored, changes)

    async def m_editMessageCaption(self, state: BotState, params: Params) -> Any:
        """editMessageCaption."""
        chat, stored = self._edit_target(state, params)
        if "text" in stored.message or not any(
            k in stored.message for k in ("photo", "document", "voice")
        ):
            raise bad_request("there is no caption in the message to edit")
        caption, entities = self._format(params, "caption", "caption_entities", caption=True)
        changes = {
            "caption": caption,
            "caption_entities": entities,
            "reply_markup": self._edit_markup(params),
        }
        return self._apply_edit(state, chat, stored, changes)

    async def m_editMessageReplyMarkup(self, state: BotState, params: Params) -> Any:
        """editMessageReplyMarkup."""
        chat, stored = self._edit_target(state, params)
        return self._apply_edit(state, chat, stored, {"reply_markup": self._edit_markup(params)})

    async def m_deleteMessage(self, state: BotState, params: Params) -> bool:
        """deleteMessage."""
        chat = self.world.resolve_chat(state, params)
        message_id = params.int("message_id")
        stored = chat.live(message_id) if message_id is not None else None
        if stored is None:
            raise bad_request("message to delete not found")
        own = stored.from_bot and stored.sender_id == state.user.id
        if chat.type != "private" and not own and state.user.id not in chat.admins:
            raise bad_request("message can't be deleted")
        if "forum_topic_created" in stored.message:
            raise bad_request("message can't be deleted")
        if now() - int(stored.message["date"]) >= MAX_DELETE_AGE:
            # Bots may delete a message only within 48 hours of its sending, admin or not.
            raise bad_request("message can't be deleted")
        stored.deleted = True
        self.world.emit("deleted", chat, message_id=stored.message_id, thread_id=stored.thread_id)
        return True

    # ---------------------------------------------------------------- callback queries

    async def m_answerCallbackQuery(self, state: BotState, params: Params) -> bool:
        """answerCallbackQuery: once, and only soon after the press."""
        query_id = params.str("callback_query_id") or ""
        record = state.callbacks.get(query_id)
        too_old = "query is too old and response timeout expired or query ID is invalid"
        if record is None or record.answered:
            raise bad_request(too_old)
        if time.monotonic() - record.created > self.world.config.callback_answer_timeout:
            raise bad_request(too_old)
        text = params.str("text") or ""
        if len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        record.answered = True
        self.world.emit(
            "callback_answer",
            None,
            bot_id=state.user.id,
            callback_query_id=query_id,
            text=text,
            show_alert=params.bool("show_alert"),
            url=params.str("url"),
        )
        return True

    # ---------------------------------------------------------------- copies and forwards

    def _source(self, state: BotState, params: Params, what: str) -> tuple[Chat, StoredMessage]:
        source_chat = self.world.resolve_chat(state, params, "from_chat_id")
        message_id = params.int("message_id")
        stored = source_chat.live(message_id) if message_id is not None else None
        if stored is None:
            raise bad_request(f"message to {what} not found")
        if stored.service or stored.message.get("has_protected_content"):
            raise bad_request(
                f"the message can't be {'forwarded' if what == 'forward' else 'copied'}"
            )
        return source_chat, stored

    async def m_copyMessage(self, state: BotState, params: Params) -> dict[str, Any]:
        """copyMessage: the same content without a link to the original; returns MessageId."""

        def build(chat: Chat) -> dict[str, Any]:
            _, stored = self._source(state, params, "copy")
            content = {k: stored.message[k] for k in CONTENT_KEYS if k in stored.message}
            if params.has("caption") and "text" not in content:
                caption, entities = self._format(params, "caption", "caption_entities", True)
                content.pop("caption_entities", None)
                content["caption"] = caption
                content.update(nonempty("caption_entities", entities))
            return json.loads(json.dumps(content))

        message = await self._send(state, params, build)
        return {"message_id": message["message_id"]}

    async def m_forwardMessage(self, state: BotState, params: Params) -> dict[str, Any]:
        """forwardMessage: the content plus forward_origin naming the original sender."""

        def build(chat: Chat) -> dict[str, Any]:
            _, stored = self._source(state, params, "forward")
            content = {k: stored.message[k] for k in CONTENT_KEYS if k in stored.message}
            origin = stored.message.get("forward_origin")
            if origin is None:
                sender = self.world.users.get(stored.sender_id)
                date = stored.message["date"]
                if sender is not None and sender.hide_forwards and not sender.is_bot:
                    origin = {"type": "hidden_user", "sender_user_name": sender.full_name}
                else:
                    origin = {"type": "user", "sender_user": stored.message["from"]}
                origin["date"] = date
            content["forward_origin"] = origin
            return json.loads(json.dumps(content))

        if params.bool("allow_paid_broadcast"):
            # Paid broadcasts do not apply to forwardMessage (Bot FAQ).
            params.values.pop("allow_paid_broadcast", None)
        return await self._send(state, params, build)

"""Chats as a bot sees them: getChat, getChatMember (members, admins and their rights), forum
topics (create, edit, close, reopen, delete) and pinned messages."""

from __future__ import annotations

from typing import Any

from bot.emulator.errors import bad_request
from bot.emulator.params import Params
from bot.emulator.state import (
    TOPIC_ICON_COLORS,
    BotState,
    Chat,
    ForumTopic,
    User,
    clean_topic_name,
)
from bot.emulator.world import World


class ChatMethods:
    """Chat information, forum topics and pins."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def m_getChat(self, state: BotState, params: Params) -> dict[str, Any]:
        """getChat: ChatFullInfo."""
        chat = self.world.resolve_chat(state, params)
        info = {
            **chat.to_api(),
            "accent_color_id": chat.id % 7 if chat.type == "private" else 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": True,
                "limited_gifts": True,
                "unique_gifts": True,
                "premium_subscription": True,
                "gifts_from_channels": True,
            },
        }
        if chat.type == "private" and chat.user is not None and chat.user.hide_forwards:
            info["has_private_forwards"] = True
        if chat.pinned:
            pinned = chat.live(chat.pinned[-1])
            if pinned is not None:
                info["pinned_message"] = pinned.message
        return info

    async def m_getChatMember(self, state: BotState, params: Params) -> dict[str, Any]:
        """getChatMember."""
        chat = self.world.resolve_chat(state, params)
        user_id = params.int("user_id")
        user = self.world.users.get(user_id or 0)
        if user is None:
            raise bad_request("user not found")
        if chat.type == "private":
            if user.id not in chat.members:
                raise bad_request("user not found")
            return {"status": "member", "user": user.to_api()}
        if user.id == chat.owner_id:
            return {"status": "creator", "user": user.to_api(), "is_anonymous": False}
        if user.id in chat.admins:
            return _admin_obj(user, chat)
        if user.id in chat.members:
            return {"status": "member", "user": user.to_api()}
        return {"status": "left", "user": user.to_api()}

    # ---------------------------------------------------------------- forum topics

    def _forum(self, state: BotState, params: Params) -> Chat:
        chat = self.world.resolve_chat(state, params)
        if not chat.is_forum:
            raise bad_request("the chat is not a forum")
        return chat

    @staticmethod
    def _topic_rights(
        state: BotState, chat: Chat, topic: ForumTopic, what: str, admin_right: bool | None = None
    ) -> None:
        """Managing a topic needs can_manage_topics (or ``admin_right``) unless the bot opened
        it itself; Telegram's wording names the action."""
        allowed = chat.can_manage_topics(state.user.id) if admin_right is None else admin_right
        if not allowed and topic.creator_id != state.user.id:
            raise bad_request(f"not enough rights to {what} the topic")

    def _topic(self, chat: Chat, params: Params) -> ForumTopic:
        thread_id = params.int("message_thread_id")
        topic = chat.topics.get(thread_id or 0)
        if topic is None:
            raise bad_request("message thread not found")
        return topic

    def _topic_service(self, state: BotState, chat: Chat, topic: ForumTopic, body: Any) -> None:
        self.world.post(chat, state.user, True, body, topic.message_thread_id, None, service=True)

    async def m_createForumTopic(self, state: BotState, params: Params) -> dict[str, Any]:
        """createForumTopic: returns ForumTopic and posts forum_topic_created in the topic."""
        chat = self._forum(state, params)
        if not chat.can_manage_topics(state.user.id):
            raise bad_request("not enough rights to create a topic")
        # Telegram cuts a long name to 128 characters instead of refusing it.
        name = clean_topic_name(params.str("name") or "")
        if not name:
            raise bad_request("name must be non-empty")
        color = params.int("icon_color") or TOPIC_ICON_COLORS[0]
        if color not in TOPIC_ICON_COLORS:
            raise bad_request("TOPIC_ICON_COLOR_INVALID")
        topic = self.world.create_topic(
            chat, state.user, name, color, params.str("icon_custom_emoji_id"), True
        )
        return topic.to_api()

    async def m_editForumTopic(self, state: BotState, params: Params) -> bool:
        """editForumTopic."""
        chat = self._forum(state, params)
        topic = self._topic(chat, params)
        self._topic_rights(state, chat, topic, "edit")
        edited: dict[str, Any] = {}
        name = clean_topic_name(params.str("name") or "")
        if name and name != topic.name:
            topic.name = name
            edited["name"] = topic.name
        emoji = params.str("icon_custom_emoji_id")
        if emoji is not None and emoji != (topic.icon_custom_emoji_id or ""):
            topic.icon_custom_emoji_id = emoji or None
            edited["icon_custom_emoji_id"] = emoji
        if not edited:
            raise bad_request("TOPIC_NOT_MODIFIED")
        self._topic_service(state, chat, topic, {"forum_topic_edited": edited})
        self.world.emit("topic_edited", chat, topic=topic.to_api())
        return True

    async def m_closeForumTopic(self, state: BotState, params: Params) -> bool:
        """closeForumTopic."""
        chat = self._forum(state, params)
        topic = self._topic(chat, params)
        self._topic_rights(state, chat, topic, "close or open")
        if topic.closed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.closed = True
        self._topic_service(state, chat, topic, {"forum_topic_closed": {}})
        self.world.emit("topic_closed", chat, thread_id=topic.message_thread_id)
        return True

    async def m_reopenForumTopic(self, state: BotState, params: Params) -> bool:
        """reopenForumTopic."""
        chat = self._forum(state, params)
        topic = self._topic(chat, params)
        self._topic_rights(state, chat, topic, "close or open")
        if not topic.closed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.closed = False
        self._topic_service(state, chat, topic, {"forum_topic_reopened": {}})
        self.world.emit("topic_reopened", chat, thread_id=topic.message_thread_id)
        return True

    async def m_deleteForumTopic(self, state: BotState, params: Params) -> bool:
        """deleteForumTopic: the topic and all its messages go away."""
        chat = self._forum(state, params)
        topic = self._topic(chat, params)
        # Deleting someone else's topic takes can_delete_messages, which every admin here has.
        self._topic_rights(state, chat, topic, "delete", state.user.id in chat.admins)
        self.world.remove_topic(chat, topic.message_thread_id)
        return True

    # ---------------------------------------------------------------- pins

    async def m_pinChatMessage(self, state: BotState, params: Params) -> bool:
        """pinChatMessage: pins and posts a pinned_message service message."""
        chat = self.world.resolve_chat(state, params)
        message_id = params.int("message_id")
        stored = chat.live(message_id) if message_id is not None else None
        if stored is None:
            raise bad_request("message to pin not found")
        if chat.type != "private" and state.user.id not in chat.admins:
            raise bad_request("not enough rights to manage pinned messages in the chat")
        if message_id in chat.pinned:
            chat.pinned.remove(message_id)
        chat.pinned.append(stored.message_id)
        pinned = dict(stored.message)
        pinned.pop("reply_to_message", None)
        self.world.post(
            chat,
            state.user,
            True,
            {"pinned_message": pinned},
            stored.thread_id,
            None,
            service=True,
        )
        self.world.emit("pinned", chat, message_id=stored.message_id)
        return True

    async def m_unpinChatMessage(self, state: BotState, params: Params) -> bool:
        """unpinChatMessage: the given message, or the most recent pin."""
        chat = self.world.resolve_chat(state, params)
        message_id = params.int("message_id")
        if message_id is None and chat.pinned:
            message_id = chat.pinned[-1]
        if message_id is not None and message_id in chat.pinned:
            chat.pinned.remove(message_id)
            self.world.emit("unpinned", chat, message_id=message_id)
        return True


def _admin_obj(user: User, chat: Chat) -> dict[str, Any]:
    rights = {
        "can_be_edited": False,
        "is_anonymous": False,
        "can_manage_chat": True,
        "can_delete_messages": True,
        "can_manage_video_chats": True,
        "can_restrict_members": True,
        "can_promote_members": False,
        "can_change_info": True,
        "can_invite_users": True,
        "can_post_stories": False,
        "can_edit_stories": False,
        "can_delete_stories": False,
        "can_send_welcome_messages": False,
        "can_pin_messages": True,
    }
    if chat.is_forum:
        rights["can_manage_topics"] = chat.can_manage_topics(user.id)
    return {"status": "administrator", "user": user.to_api(), **rights}

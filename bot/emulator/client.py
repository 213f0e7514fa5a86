"""Python client of the emulator's JSON control API, for tests and scripts.

async with EmulatorClient(server.base_url) as emu:
    msg = await emu.user(42).send("hello")
    reply = await emu.wait_bot_message(chat_id=42)
"""

# The `timeout` arguments are long-poll lengths sent to the server, not client-side deadlines.
# ruff: noqa: ASYNC109

from __future__ import annotations

import base64
from typing import Any

import aiohttp

CONTROL_PREFIX = "/_emulator"


class EmulatorClientError(Exception):
    """The control API refused a request (status and message from the emulator)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class UserHandle:
    """Acts as one simulated user: send, press buttons, edit, block the bot."""

    def __init__(self, client: EmulatorClient, user_id: int) -> None:
        self.client = client
        self.id = user_id

    async def _send(self, kind: str, **fields: Any) -> dict[str, Any]:
        body = {"type": kind, **{k: v for k, v in fields.items() if v is not None}}
        entry = await self.client.request("POST", f"/users/{self.id}/send", body)
        return dict(entry["message"])

    async def send(
        self,
        text: str,
        chat_id: int | None = None,
        thread_id: int | None = None,
        reply_to: int | None = None,
    ) -> dict[str, Any]:
        """Send a text message (private chat with the bot unless chat_id is given)."""
        return await self._send(
            "text", text=text, chat_id=chat_id, thread_id=thread_id, reply_to=reply_to
        )

    async def send_photo(
        self,
        data: bytes = b"",
        caption: str | None = None,
        chat_id: int | None = None,
        thread_id: int | None = None,
    ) -> dict[str, Any]:
        """Send a photo (bytes optional; the emulator stores them for getFile)."""
        return await self._send(
            "photo",
            data_base64=_b64(data),
            caption=caption,
            chat_id=chat_id,
            thread_id=thread_id,
        )

    async def send_document(
        self,
        data: bytes,
        file_name: str = "document.pdf",
        mime_type: str = "application/pdf",
        caption: str | None = None,
        chat_id: int | None = None,
        thread_id: int | None = None,
    ) -> dict[str, Any]:
        """Send a document."""
        return await self._send(
            "document",
            data_base64=_b64(data),
            file_name=file_name,
            mime_type=mime_type,
            caption=caption,
            chat_id=chat_id,
            thread_id=thread_id,
        )

    async def send_voice(
        self,
        data: bytes = b"",
        duration: int = 3,
        chat_id: int | None = None,
        thread_id: int | None = None,
    ) -> dict[str, Any]:
        """Send a voice note."""
        return await self._send(
            "voice", data_base64=_b64(data), duration=duration, chat_id=chat_id, thread_id=thread_id
        )

    async def send_sticker(
        self, emoji: str = "👍", chat_id: int | None = None, thread_id: int | None = None
    ) -> dict[str, Any]:
        """Send a sticker."""
        return await self._send("sticker", emoji=emoji, chat_id=chat_id, thread_id=thread_id)

    async def send_location(
        self,
        latitude: float,
        longitude: float,
        chat_id: int | None = None,
        thread_id: int | None = None,
    ) -> dict[str, Any]:
        """Send a location."""
        return await self._send(
            "location",
            latitude=latitude,
            longitude=longitude,
            chat_id=chat_id,
            thread_id=thread_id,
        )

    async def send_contact(
        self,
        phone_number: str,
        first_name: str | None = None,
        own: bool = True,
        chat_id: int | None = None,
    ) -> dict[str, Any]:
        """Share a contact (by default the user's own, as the "share my number" button does)."""
        return await self._send(
            "contact",
            phone_number=phone_number,
            first_name=first_name or f"User {self.id}",
            user_id=self.id if own else None,
            chat_id=chat_id,
        )

    async def press(
        self,
        message_id: int,
        text: str | None = None,
        data: str | None = None,
        chat_id: int | None = None,
    ) -> dict[str, Any]:
        """Press an inline button of a message by its text or callback data."""
        body = {"message_id": message_id, "text": text, "data": data, "chat_id": chat_id}
        return dict(
            await self.client.request(
                "POST", f"/users/{self.id}/press", {k: v for k, v in body.items() if v is not None}
            )
        )

    async def edit(self, message_id: int, text: str, chat_id: int | None = None) -> dict[str, Any]:
        """Edit one of the user's own text messages."""
        body: dict[str, Any] = {"message_id": message_id, "text": text}
        if chat_id is not None:
            body["chat_id"] = chat_id
        entry = await self.client.request("POST", f"/users/{self.id}/edit", body)
        return dict(entry["message"])

    async def block(self) -> None:
        """Block the bot (the bot gets my_chat_member "kicked"; sends to this user fail)."""
        await self.client.request("POST", f"/users/{self.id}/block", {})

    async def unblock(self) -> None:
        """Unblock the bot (my_chat_member "member")."""
        await self.client.request("POST", f"/users/{self.id}/unblock", {})

    async def deactivate(self) -> None:
        """Delete the account: sends to it fail with "user is deactivated"."""
        await self.client.request("POST", f"/users/{self.id}/deactivate", {})

    async def reactivate(self) -> None:
        """Undo deactivate."""
        await self.client.request("POST", f"/users/{self.id}/reactivate", {})


class EmulatorClient:
    """JSON control API client; an async context manager owning its HTTP session."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> EmulatorClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        verb: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> Any:
        """Call a control endpoint and return its result, raising EmulatorClientError."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        clean_query = {k: str(v) for k, v in (query or {}).items() if v is not None}
        if self.token is not None:
            clean_query.setdefault("token", self.token)
        async with self._session.request(
            verb,
            self.base_url + CONTROL_PREFIX + path,
            json=body,
            params=clean_query,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            payload = await response.json()
        if not payload.get("ok"):
            raise EmulatorClientError(response.status, str(payload.get("error")))
        return payload["result"]

    # ------------------------------------------------------------ world

    def user(self, user_id: int) -> UserHandle:
        """A handle acting as this user (created on first use if unknown)."""
        return UserHandle(self, user_id)

    async def create_user(
        self, user_id: int | None = None, first_name: str = "Citizen", **fields: Any
    ) -> UserHandle:
        """Create a user (fields: last_name, username, language_code, hide_forwards, …)."""
        body = {"id": user_id, "first_name": first_name, **fields}
        created = await self.request(
            "POST", "/users", {k: v for k, v in body.items() if v is not None}
        )
        return UserHandle(self, int(created["id"]))

    async def create_group(
        self,
        title: str = "Example City duty officers",
        members: list[int] | None = None,
        admins: list[int] | None = None,
        is_forum: bool = False,
        chat_type: str = "supergroup",
        chat_id: int | None = None,
        bot_is_admin: bool = True,
        bot_can_manage_topics: bool = True,
    ) -> dict[str, Any]:
        """Create a group or supergroup the bot is in; returns its Chat object."""
        body: dict[str, Any] = {
            "type": chat_type,
            "title": title,
            "members": members or [],
            "admins": admins or [],
            "is_forum": is_forum,
            "bot_is_admin": bot_is_admin,
            "bot_can_manage_topics": bot_can_manage_topics,
        }
        if chat_id is not None:
            body["id"] = chat_id
        return dict(await self.request("POST", "/chats", body))

    async def create_forum(
        self,
        title: str = "Example City duty officers",
        members: list[int] | None = None,
        admins: list[int] | None = None,
        chat_id: int | None = None,
        bot_is_admin: bool = True,
        bot_can_manage_topics: bool = True,
    ) -> dict[str, Any]:
        """Create a forum supergroup with the bot as admin (with can_manage_topics unless
        ``bot_can_manage_topics`` is False)."""
        return await self.create_group(
            title,
            members,
            admins,
            True,
            "supergroup",
            chat_id,
            bot_is_admin=bot_is_admin,
            bot_can_manage_topics=bot_can_manage_topics,
        )

    async def register_bot(
        self, token: str, username: str = "other_bot", first_name: str = "Other Bot"
    ) -> dict[str, Any]:
        """Register another bot token."""
        body = {"token": token, "username": username, "first_name": first_name}
        return dict(await self.request("POST", "/bots", body))

    async def delete_chat(self, chat_id: int) -> None:
        """Make a chat disappear (the Bot API then answers "chat not found")."""
        await self.request("DELETE", f"/chats/{chat_id}")

    async def state(self) -> dict[str, Any]:
        """Bots, users and chats known to the emulator."""
        return dict(await self.request("GET", "/state"))

    async def reset(self) -> None:
        """Forget everything."""
        await self.request("POST", "/reset", {})

    # ------------------------------------------------------------ forum topics

    async def topics(self, chat_id: int) -> list[dict[str, Any]]:
        """Forum topics of a chat, each with is_closed."""
        return list(await self.request("GET", f"/chats/{chat_id}/topics"))

    async def create_topic(self, chat_id: int, user_id: int, name: str) -> dict[str, Any]:
        """A member opens a topic from their app."""
        body = {"user_id": user_id, "name": name}
        return dict(await self.request("POST", f"/chats/{chat_id}/topics", body))

    async def close_topic(self, chat_id: int, thread_id: int) -> None:
        """An admin closes a topic."""
        await self.request("POST", f"/chats/{chat_id}/topics/{thread_id}/close", {})

    async def reopen_topic(self, chat_id: int, thread_id: int) -> None:
        """An admin reopens a topic."""
        await self.request("POST", f"/chats/{chat_id}/topics/{thread_id}/reopen", {})

    async def delete_topic(self, chat_id: int, thread_id: int) -> None:
        """An admin deletes a topic (sends into it then fail with "message thread not found")."""
        await self.request("POST", f"/chats/{chat_id}/topics/{thread_id}/delete", {})

    async def age_message(self, chat_id: int, message_id: int, seconds: int) -> dict[str, Any]:
        """Move a message's date ``seconds`` into the past (e.g. beyond deleteMessage's 48 h)."""
        body = {"seconds": seconds}
        path = f"/chats/{chat_id}/messages/{message_id}/age"
        return dict(await self.request("POST", path, body))

    # ------------------------------------------------------------ observing

    async def transcript(self, chat_id: int) -> list[dict[str, Any]]:
        """All messages of a chat, both directions, with edits, deletions and keyboards."""
        return list(await self.request("GET", f"/chats/{chat_id}/transcript"))

    async def wait_bot_entry(
        self,
        chat_id: int,
        thread_id: int | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """Like wait_bot_message, but the full transcript entry (with chat_keyboard)."""
        return dict(
            await self.request(
                "GET",
                f"/chats/{chat_id}/wait",
                query={"thread_id": thread_id, "timeout": timeout},
                timeout=timeout + 10,
            )
        )

    async def wait_bot_message(
        self,
        chat_id: int,
        thread_id: int | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """The bot's next message in a chat (or topic) not yet returned; raises on timeout."""
        try:
            entry = await self.wait_bot_entry(chat_id, thread_id, timeout)
        except EmulatorClientError as error:
            if error.status == 408:
                raise TimeoutError(error.message) from None
            raise
        return dict(entry["message"])

    async def events(self, after: int = 0, timeout: float = 0.0) -> list[dict[str, Any]]:
        """Transcript events after a cursor, long-polling up to timeout seconds."""
        return list(
            await self.request(
                "GET", "/events", query={"after": after, "timeout": timeout}, timeout=timeout + 10
            )
        )

    async def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        """Bot API calls received, optionally for one method."""
        return list(await self.request("GET", "/calls", query={"method": method}))

    async def stats(self) -> dict[str, Any]:
        """Counters: requests, calls per method, too_many_requests, webhook deliveries…"""
        return dict(await self.request("GET", "/stats"))

    # ------------------------------------------------------------ faults and limits

    async def inject_callback(
        self, user_id: int, message_id: int, data: str, chat_id: int | None = None
    ) -> dict[str, Any]:
        """A raw callback query with arbitrary data (not limited to the message's buttons)."""
        body: dict[str, Any] = {"user_id": user_id, "message_id": message_id, "data": data}
        if chat_id is not None:
            body["chat_id"] = chat_id
        return dict(await self.request("POST", "/callbacks", body))

    async def add_fault(
        self,
        method: str,
        kind: str,
        count: int = 1,
        chat_id: int | None = None,
        retry_after: int = 5,
        status: int = 502,
        description: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Make the next ``count`` calls of ``method`` fail.

        kind: "retry_after" (429), "server_error" (status 5xx), "error" (any status and
        description), "delay" (seconds, then normal), "drop" (connection closed).
        """
        body: dict[str, Any] = {
            "method": method,
            "kind": kind,
            "count": count,
            "chat_id": chat_id,
            "retry_after": retry_after,
            "status": status,
            "description": description,
            "delay": delay,
        }
        await self.request("POST", "/faults", body)

    async def clear_faults(self) -> None:
        """Remove pending faults."""
        await self.request("DELETE", "/faults")

    async def set_limits(self, **limits: Any) -> dict[str, Any]:
        """Change flood limits (enabled, global_per_second, private_burst, …)."""
        return dict(await self.request("POST", "/limits", limits))


def _b64(data: bytes) -> str | None:
    return base64.b64encode(data).decode() if data else None

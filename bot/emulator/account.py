"""The bot's own account: getMe, logOut and close, and its command lists (setMyCommands,
getMyCommands, deleteMyCommands per scope and language)."""

from __future__ import annotations

import json
import re
from typing import Any

from bot.emulator.errors import bad_request
from bot.emulator.params import Params
from bot.emulator.state import BotState

_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")


class AccountMethods:
    """The account methods; all they keep is in the calling bot's BotState."""

    async def m_getMe(self, state: BotState, params: Params) -> dict[str, Any]:
        """getMe."""
        return {
            **state.user.to_api(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def m_logOut(self, state: BotState, params: Params) -> bool:
        """logOut."""
        return True

    async def m_close(self, state: BotState, params: Params) -> bool:
        """close."""
        return True

    async def m_setMyCommands(self, state: BotState, params: Params) -> bool:
        """setMyCommands."""
        commands = params.json("commands", "commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise bad_request("too many commands specified")
        clean: list[dict[str, Any]] = []
        for item in commands:
            if not isinstance(item, dict):
                raise bad_request("can't parse BotCommand")
            command = str(item.get("command", "")).lstrip("/")
            description = str(item.get("description", ""))
            if not _COMMAND_RE.fullmatch(command):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= 256:
                raise bad_request("command description must be non-empty")
            clean.append({"command": command, "description": description})
        state.commands[_scope_key(params)] = clean
        return True

    async def m_getMyCommands(self, state: BotState, params: Params) -> list[dict[str, Any]]:
        """getMyCommands."""
        return state.commands.get(_scope_key(params), [])

    async def m_deleteMyCommands(self, state: BotState, params: Params) -> bool:
        """deleteMyCommands."""
        state.commands.pop(_scope_key(params), None)
        return True


def _scope_key(params: Params) -> str:
    scope = params.json("scope", "scope") or {"type": "default"}
    return json.dumps(scope, sort_keys=True) + "|" + (params.str("language_code") or "")

"""The Emulator: the world and its control API (world.py, control.py) with the Bot API methods
of its parts (account, updates, messages, chats, files); runs each call with its faults, logging
and statistics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from bot.emulator.account import AccountMethods
from bot.emulator.chats import ChatMethods
from bot.emulator.control import Control
from bot.emulator.errors import ApiError, ControlError
from bot.emulator.faults import DropConnection, Fault
from bot.emulator.files import FileMethods
from bot.emulator.messages import MessageMethods
from bot.emulator.params import Params
from bot.emulator.state import BotState
from bot.emulator.updates import UpdateMethods
from bot.emulator.world import EmulatorConfig

DEFAULT_TOKEN = "123456789:AAEmulatorSafewellDefaultToken_0123456789"

Method = Callable[[BotState, Params], Awaitable[Any]]


class Emulator(Control):
    """The one emulator object; the HTTP layer in server.py only translates requests."""

    def __init__(self, config: EmulatorConfig | None = None, token: str = DEFAULT_TOKEN) -> None:
        super().__init__(config or EmulatorConfig(), token)
        self._files = FileMethods(self)
        self._updates = UpdateMethods(self, self.call)
        parts = (
            AccountMethods(),
            self._updates,
            MessageMethods(self),
            ChatMethods(self),
            self._files,
        )
        # Bot API method name (lower-case) -> the part's m_<method>.
        self._methods: dict[str, Method] = {
            name[len("m_") :].lower(): getattr(part, name)
            for part in parts
            for name in dir(part)
            if name.startswith("m_")
        }
        self.register_bot(token, username="safewell_bot", first_name="Safewell")

    # ---------------------------------------------------------------- lifecycle

    async def shutdown(self) -> None:
        """Stop background webhook deliveries and release every waiting long poll."""
        self.closing = True
        for state in self.bots.values():
            await self._updates.release(state)
        self._notify()

    async def reset(self) -> None:
        """Forget everything and start over with only the default bot."""
        token = self.default_token
        default = self.default_bot
        for state in self.bots.values():
            await self._updates.release(state)
        self._notify()
        self._init_state()
        self.register_bot(token, default.user.username or "bot", default.user.first_name)

    # ---------------------------------------------------------------- HTTP-facing entry point

    def file_bytes(self, token: str, path: str) -> bytes | None:
        """Bytes served at /file/bot<token>/<path>, or None."""
        return self._files.file_bytes(token, path)

    async def call(self, token: str, method: str, params: Params) -> Any:
        """Run one Bot API call (faults, logging and statistics included); raise ApiError."""
        state = self.bots.get(token)
        if state is None:
            raise ApiError(401, "Unauthorized")
        name = method.lower()
        handler = self._methods.get(name)
        if handler is None:
            raise ApiError(404, "Not Found")
        self.stats["requests"] += 1
        self.calls_per_method[name] += 1
        entry: dict[str, Any] = {
            "method": name,
            "bot_id": state.user.id,
            "params": params.loggable(),
            "time": time.time(),
        }
        self.calls.append(entry)
        if len(self.calls) > self.config.max_log:
            del self.calls[: len(self.calls) - self.config.max_log]
        try:
            fault = self.take_fault(name, params)
            if fault is not None:
                self.stats["faults_fired"] += 1
                entry["fault"] = fault.kind
                if fault.kind == "delay":
                    await asyncio.sleep(fault.delay)
                elif fault.kind == "drop":
                    raise DropConnection
                elif (error := fault.error()) is not None:
                    raise error
            result = await handler(state, params)
        except ApiError as error:
            entry["error_code"] = error.code
            entry["description"] = error.description
            self.stats[f"errors_{error.code}"] += 1
            if error.code == 429:
                self.stats["too_many_requests"] += 1
            raise
        entry["ok"] = True
        return result

    # ---------------------------------------------------------------- faults and statistics

    def take_fault(self, method: str, params: Params) -> Fault | None:
        """Consume one use of the first fault matching this call."""
        for fault in self.faults:
            if fault.matches(method, params):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def add_fault(self, fault: Fault) -> None:
        """Schedule a fault."""
        if fault.kind not in {"retry_after", "server_error", "error", "delay", "drop"}:
            raise ControlError(400, f"unknown fault kind {fault.kind!r}")
        fault.method = fault.method.lower()
        self.faults.append(fault)

    def stats_snapshot(self) -> dict[str, Any]:
        """Counters for the control API."""
        return {
            "requests": self.stats["requests"],
            "too_many_requests": self.stats["too_many_requests"],
            "faults_fired": self.stats["faults_fired"],
            "webhook_deliveries": self.stats["webhook_deliveries"],
            "webhook_failures": self.stats["webhook_failures"],
            "webhook_max_in_flight": self.stats["webhook_max_in_flight"],
            "updates": self.stats["updates"],
            "errors": {
                k[len("errors_") :]: v for k, v in self.stats.items() if k.startswith("errors_")
            },
            "calls": dict(self.calls_per_method),
            "pending_faults": [asdict(f) for f in self.faults],
        }

"""Scripted failures a test schedules for Bot API calls (the control API's /faults)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.emulator.errors import ApiError, too_many_requests
from bot.emulator.params import Params


@dataclass
class Fault:
    """A scripted failure for the next ``count`` calls of a method (optionally one chat only)."""

    method: str  # lower-case method name, or "*" for every method
    kind: str  # "retry_after" | "server_error" | "error" | "delay" | "drop"
    count: int = 1
    chat_id: int | str | None = None
    retry_after: int = 5
    status: int = 502
    description: str | None = None
    delay: float = 0.0

    def matches(self, method: str, params: Params) -> bool:
        """Whether this fault applies to a call."""
        if self.count <= 0 or self.method not in {"*", method}:
            return False
        return self.chat_id is None or params.str("chat_id") == str(self.chat_id)

    def error(self) -> ApiError | None:
        """The error this fault answers with, if it is an error fault."""
        if self.kind == "retry_after":
            return too_many_requests(self.retry_after)
        if self.kind == "server_error":
            default = {500: "Internal Server Error", 502: "Bad Gateway"}.get(
                self.status, "Internal Server Error"
            )
            return ApiError(self.status, self.description or default)
        if self.kind == "error":
            return ApiError(self.status, self.description or "Bad Request: emulated error")
        return None


class DropConnection(Exception):
    """Raised inside a call to make the HTTP layer drop the connection without an answer."""

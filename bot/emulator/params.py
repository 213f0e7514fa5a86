"""Method parameters as Telegram reads them: strings, JSON-encoded fields and uploaded parts."""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass
from typing import Any

from bot.emulator.errors import bad_request


@dataclass
class Upload:
    """One uploaded multipart file."""

    filename: str
    content_type: str | None
    data: bytes


class Params:
    """Typed access to a method's parameters, however the client encoded them."""

    def __init__(self, values: dict[str, Any], uploads: dict[str, Upload] | None = None) -> None:
        self.values = values
        self.uploads = uploads or {}

    def has(self, name: str) -> bool:
        """Whether the parameter is present and not empty."""
        value = self.values.get(name)
        return value is not None and value != ""

    def raw(self, name: str) -> Any:
        """The value as received."""
        return self.values.get(name)

    def str(self, name: builtins.str) -> builtins.str | None:
        """A string parameter; numbers are accepted as their text."""
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float | str):
            return str(value)
        return json.dumps(value)

    def int(self, name: builtins.str) -> builtins.int | None:
        """An integer parameter; an unparsable value is a Bad Request."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return int(value)
        try:
            return int(value)
        except (TypeError, ValueError):
            try:
                as_float = float(value)
            except (TypeError, ValueError):
                raise bad_request(f"invalid {name} specified") from None
            return int(as_float)

    def float(self, name: builtins.str) -> builtins.float | None:
        """A floating-point parameter."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def bool(self, name: builtins.str) -> builtins.bool:
        """A boolean parameter; Telegram accepts true/false and 1/0."""
        value = self.values.get(name)
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value != 0
        if isinstance(value, str):
            return value.strip().lower() in {"true", "1", "yes"}
        return False

    def json(self, name: builtins.str, what: builtins.str | None = None) -> Any:
        """A JSON-serialised complex field (already decoded when the body was JSON)."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {what or name} JSON object") from None
        return value

    def upload(self, name: builtins.str) -> Upload | None:
        """The uploaded file a parameter refers to: ``attach://<part>`` or a part named ``name``."""
        value = self.values.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            return self.uploads.get(value[len("attach://") :])
        return self.uploads.get(name)

    def loggable(self) -> dict[builtins.str, Any]:
        """Parameters for the call log, with uploaded bytes summarised."""
        logged: dict[builtins.str, Any] = dict(self.values)
        for key, upload in self.uploads.items():
            logged[key] = {"upload": upload.filename, "size": len(upload.data)}
        return logged

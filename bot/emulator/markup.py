"""Inline keyboards as Telegram reads them: one action per button, checked URLs, size limits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.emulator.errors import bad_request

# A button is the first of these it carries (a url wins over callback_data, as on Telegram);
# url and callback_data count only when non-empty, the others when present.
BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "callback_game",
    "pay",
    "switch_inline_query",
    "switch_inline_query_chosen_chat",
    "switch_inline_query_current_chat",
    "login_url",
    "web_app",
    "copy_text",
)
# How a button looks, kept next to its action.
_LOOK_KEYS = ("style", "icon_custom_emoji_id")
# Telegram keeps the first 12 buttons of a row and ignores the rest...
MAX_ROW_BUTTONS = 12
# ...and refuses a keyboard of more than 100 buttons ("reply markup is too long").
MAX_BUTTONS = 100
MAX_CALLBACK_DATA = 64
_HOST_OK = re.compile(r"(?:[A-Za-z0-9.\-_!$,~*'();&+=]|%[0-9A-Fa-f]{2}|[^\x00-\x7f])*")
_SPACES = " \t\r\n\v\0"
_USERINFO_OK = re.compile(r"(?:[A-Za-z0-9.\-_!$,~*'();&+=:]|%[0-9A-Fa-f]{2}|[^\x00-\x7f])*")


class UrlError(ValueError):
    """A URL Telegram would not take; str(error) is Telegram's reason."""


@dataclass
class _Url:
    protocol: str
    userinfo: str
    host: str
    port: int  # 0: not given
    path: str  # starts with "/"
    ipv6: bool


def _parse_url(url: str) -> _Url:
    """Split a URL the way Telegram does; no scheme means http."""
    scheme = re.match(r"[^:/?#@\[\]]*", url)
    name = scheme.group(0) if scheme else ""
    protocol, rest = "http", url
    if url[len(name) : len(name) + 3] == "://":
        if name.lower() not in {"http", "https"}:
            raise UrlError("Unsupported URL protocol")
        protocol, rest = name.lower(), url[len(name) + 3 :]
    end = re.search(r"[/?#]", rest)
    authority, path = (rest[: end.start()], rest[end.start() :]) if end else (rest, "")
    port = 0
    colon = max(authority.rfind(":"), 0)
    if colon > 0 and not any(c in authority[colon:] for c in "]@"):
        digits = authority[colon + 1 :].lstrip("0") or "0"
        if not digits.isdigit() or not 0 < int(digits) <= 65535:
            raise UrlError("Wrong port number specified in the URL")
        port, authority = int(digits), authority[:colon]
    userinfo, _, host = authority.rpartition("@")
    ipv6 = len(host) > 1 and host[0] == "[" and host[-1] == "]"
    if not host:
        raise UrlError("URL host is empty")
    if host == ".":
        raise UrlError("Host is invalid")
    host = host.lower()
    if not ipv6:
        if not _HOST_OK.fullmatch(host):
            raise UrlError("Disallowed character in URL host")
        if not _USERINFO_OK.fullmatch(userinfo):
            raise UrlError("Disallowed character in URL userinfo")
    path = path.rstrip(_SPACES) or "/"
    if not path.startswith("/"):
        path = "/" + path
    path = "".join(f"%{ord(c):02X}" if ord(c) <= 0x20 else c for c in path)
    return _Url(protocol, userinfo, host, port, path, ipv6)


def check_url(url: str) -> str:
    """The URL as Telegram stores it, or UrlError with Telegram's reason.

    No scheme means http; only http, https and tg links are taken; a web host needs a dot and
    is lower-cased, and an empty path becomes "/" (so "example.org" is "http://example.org/").
    """
    if url[:3].lower() == "tg:":
        rest = url[3:].removeprefix("//")
        parsed = _parse_url(rest)
        if (
            rest[:7].lower() == "http://"
            or parsed.protocol == "https"
            or parsed.userinfo
            or parsed.port
            or parsed.ipv6
        ):
            raise UrlError("Wrong tg URL")
        if not re.fullmatch(r"[a-z0-9_-]+", parsed.host):
            raise UrlError("Unallowed characters in URL host")
        path = parsed.path[1:] if parsed.path.startswith("/?") else parsed.path
        return f"tg://{parsed.host}{path}"
    parsed = _parse_url(url)
    if "." not in parsed.host and not parsed.ipv6:
        raise UrlError("Wrong HTTP URL")
    userinfo = parsed.userinfo + "@" if parsed.userinfo else ""
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.protocol}://{userinfo}{parsed.host}{port}{parsed.path}"


def _button_action(button: dict[str, Any]) -> str | None:
    for action in BUTTON_ACTIONS:
        value = button.get(action)
        if action in {"url", "callback_data"}:
            if value is not None and value != "":
                return action
        elif value is not None:
            return action
    return None


def _clean_button(button: Any) -> dict[str, Any]:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request("can't parse inline keyboard button: Text must be a String")
    action = _button_action(button)
    if action is None:
        raise bad_request("text buttons are unallowed in the inline keyboard")
    value = button[action]
    if action == "callback_data" and not 1 <= len(str(value).encode()) <= MAX_CALLBACK_DATA:
        raise bad_request("BUTTON_DATA_INVALID")
    if action == "url" and not re.fullmatch(r"tg://user\?id=\d+", str(value)):
        try:
            value = check_url(str(value))
        except UrlError as error:
            raise bad_request(
                f"inline keyboard button URL '{button[action]}' is invalid: {error}"
            ) from None
    clean = {"text": button["text"], action: value}
    clean.update({k: button[k] for k in _LOOK_KEYS if button.get(k) is not None})
    return clean


def validate_inline_keyboard(markup: dict[str, Any]) -> dict[str, Any]:
    """The InlineKeyboardMarkup Telegram would store, or the Bad Request it would answer."""
    rows = markup.get("inline_keyboard")
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise bad_request(
            'field "inline_keyboard" of the InlineKeyboardMarkup should be an Array of Arrays'
        )
    clean_rows: list[list[dict[str, Any]]] = []
    total = 0
    for row in rows:
        clean_row: list[dict[str, Any]] = []
        for button in row:
            if isinstance(button, dict) and button.get("text") == "":
                continue  # Telegram drops a button without text
            clean_row.append(_clean_button(button))
            if len(clean_row) >= MAX_ROW_BUTTONS:
                break
        total += len(clean_row)
        if clean_row:
            clean_rows.append(clean_row)
    if total > MAX_BUTTONS:
        raise bad_request("reply markup is too long")
    return {"inline_keyboard": clean_rows}

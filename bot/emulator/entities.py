"""Telegram-style formatting: strict HTML parse_mode, auto-detected entities, UTF-16 offsets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


class EntityParseError(ValueError):
    """The formatted text is invalid; str(error) follows Telegram's wording."""


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit Telegram uses for entity offsets."""
    return len(text.encode("utf-16-le")) // 2


_SIMPLE_TAGS: dict[str, str] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
}
_ALL_TAGS = {*_SIMPLE_TAGS, "span", "a", "tg-emoji", "blockquote"}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_SPECIAL_RE = re.compile(r"[<&]")
_ENTITY_RE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]+);")


@dataclass
class _Open:
    tag: str
    entity: dict[str, Any] | None
    start: int  # UTF-16 offset in the output text
    byte_offset: int


def _byte_offset(source: str, index: int) -> int:
    return len(source[:index].encode("utf-8"))


def _decode_entity(match: re.Match[str]) -> str | None:
    body = match.group(1)
    if body.startswith("#"):
        try:
            code = int(body[2:], 16) if body[1:2] in "xX" else int(body[1:])
            return chr(code)
        except (ValueError, OverflowError):
            return None
    return _NAMED_ENTITIES.get(body)


_HTML_SPACES = " \t\r\n\v\0"


def _skip_spaces(source: str, i: int) -> int:
    while i < len(source) and source[i] in _HTML_SPACES:
        i += 1
    return i


def _name_end(source: str, i: int, stops: str = ">") -> int:
    """Index of the first space (or end of text, or one of ``stops``) at or after ``i``."""
    while i < len(source) and source[i] not in _HTML_SPACES and source[i] not in stops:
        i += 1
    return i


def _read_start_tag(source: str, at: int) -> tuple[str, dict[str, str], int]:
    """Read the start tag opening at ``at`` the way Telegram does: the tag name runs to the first
    space or ">"; an attribute value is quoted or a name token (letters, digits, "." and "-",
    lower-cased). Returns the tag name, its attributes and the index just past ">"."""
    offset = _byte_offset(source, at)
    i = _name_end(source, at + 1)
    if i == len(source):
        raise EntityParseError(f"Unclosed start tag at byte offset {offset}")
    tag = source[at + 1 : i].lower()
    if tag not in _ALL_TAGS:
        raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {offset}')
    attrs: dict[str, str] = {}
    while True:
        i = _skip_spaces(source, i)
        if i < len(source) and source[i] == ">":
            return tag, attrs, i + 1
        name_end = _name_end(source, i, "=>/\"'")
        name = source[i:name_end]
        if not name:
            raise EntityParseError(
                f'Empty attribute name in the tag "{tag}" at byte offset {offset}'
            )
        i = _skip_spaces(source, name_end)
        if i == len(source):
            raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {offset}')
        if source[i] != "=":
            attrs[name] = ""  # an attribute without a value, e.g. <blockquote expandable>
            continue
        i = _skip_spaces(source, i + 1)
        if i == len(source):
            raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {offset}')
        if source[i] in "\"'":
            close = source.find(source[i], i + 1)
            end = len(source) if close == -1 else close
            raw = source[i + 1 : end]
            attrs[name] = _ENTITY_RE.sub(lambda m: _decode_entity(m) or m[0], raw)
            i = end if close == -1 else close + 1
        else:
            token_end = i
            while token_end < len(source) and (
                (source[token_end].isascii() and source[token_end].isalnum())
                or source[token_end] in ".-"
            ):
                token_end += 1
            if token_end < len(source) and source[token_end] not in _HTML_SPACES + ">":
                # An unquoted value with anything else in it (":" or "/" of a URL) is an error.
                raise EntityParseError(
                    f"Unexpected end of name token at byte offset {_byte_offset(source, i)}"
                )
            attrs[name] = source[i:token_end].lower()
            i = token_end
        if i == len(source):
            raise EntityParseError(f"Unclosed start tag at byte offset {offset}")


def _entity_for(tag: str, attrs: dict[str, str], source: str, at: int) -> dict[str, Any] | None:
    if tag in _SIMPLE_TAGS:
        return {"type": _SIMPLE_TAGS[tag]}
    if tag == "span":
        if attrs.get("class") != "tg-spoiler":
            raise EntityParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(source, at)}'
            )
        return {"type": "spoiler"}
    if tag == "a":
        href = attrs.get("href", "")
        if not href:
            return None
        user = re.fullmatch(r"tg://user\?id=(\d+)", href)
        if user:
            return {"type": "text_mention", "user_id": int(user.group(1))}
        return {"type": "text_link", "url": href}
    if tag == "tg-emoji":
        emoji_id = attrs.get("emoji-id")
        if not emoji_id:
            raise EntityParseError(
                f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset '
                f"{_byte_offset(source, at)}"
            )
        return {"type": "custom_emoji", "custom_emoji_id": emoji_id}
    if tag == "blockquote":
        return {"type": "expandable_blockquote" if "expandable" in attrs else "blockquote"}
    return None  # pragma: no cover - every allowed tag is handled above


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram HTML into plain text and entities, raising EntityParseError like Telegram."""
    out: list[str] = []
    out_len = 0  # UTF-16 units written so far
    stack: list[_Open] = []
    entities: list[dict[str, Any]] = []
    i = 0
    n = len(source)
    while i < n:
        ch = source[i]
        if ch == "&":
            match = _ENTITY_RE.match(source, i)
            decoded = _decode_entity(match) if match else None
            if match and decoded is not None:
                out.append(decoded)
                out_len += utf16_len(decoded)
                i = match.end()
                continue
            out.append("&")
            out_len += 1
            i += 1
            continue
        if ch != "<":
            # Copy the whole run of plain characters at once; most text has no markup.
            run_end = _SPECIAL_RE.search(source, i)
            stop = run_end.start() if run_end else n
            chunk = source[i:stop]
            out.append(chunk)
            out_len += utf16_len(chunk)
            i = stop
            continue
        offset = _byte_offset(source, i)
        if source.startswith("/", i + 1):
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {offset}")
            name_end = _name_end(source, i + 2)
            name = source[i + 2 : name_end].lower()
            end = _skip_spaces(source, name_end)
            if end == len(source) or source[end] != ">":
                raise EntityParseError(f"Unclosed end tag at byte offset {offset}")
            opened = stack.pop()
            # "</>" closes whatever is open.
            if name and name != opened.tag:
                raise EntityParseError(
                    f'Unmatched end tag at byte offset {offset}, expected "</{opened.tag}>", '
                    f'found "</{name}>"'
                )
            if opened.entity is not None and out_len > opened.start:
                closed = dict(opened.entity)
                closed["offset"] = opened.start
                closed["length"] = out_len - opened.start
                entities.append(closed)
            i = end + 1
            continue
        name, attrs, after = _read_start_tag(source, i)
        entity: dict[str, Any] | None = _entity_for(name, attrs, source, i)
        # <pre><code class="language-x"> becomes one pre entity with a language, like Telegram.
        if name == "code" and stack and stack[-1].tag == "pre" and stack[-1].entity is not None:
            language = attrs.get("class", "")
            if language.startswith("language-"):
                stack[-1].entity["language"] = language[len("language-") :]
                entity = None
        stack.append(_Open(name, entity, out_len, offset))
        i = after
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    return "".join(out), sort_entities(entities)


def sort_entities(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order entities the way Telegram returns them: by offset, outer (longer) first."""
    return sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def strip_text(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Trim surrounding whitespace as Telegram does and shift or clip entities to match."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    total = utf16_len(stripped)
    result: list[dict[str, Any]] = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, total)
        if end > start:
            result.append({**entity, "offset": start, "length": end - start})
    return stripped, result


_AUTO_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("bot_command", re.compile(r"(?<![\w/])/[a-zA-Z0-9_]{1,64}(?:@[a-zA-Z0-9_]{3,32})?(?![\w/])")),
    ("email", re.compile(r"(?<![\w.@])[\w.+-]+@[\w-]+(?:\.[\w-]+)+(?![\w@])")),
    ("url", re.compile(r"(?<![\w@/])(?:https?://)?(?:[\w-]+\.)+[a-zA-Z]{2,}(?:/[^\s]*)?")),
    ("mention", re.compile(r"(?<![\w@])@[a-zA-Z0-9_]{5,32}(?!\w)")),
    ("hashtag", re.compile(r"(?<![\w#])#\w*[^\W\d_]\w*")),
]


def detect_entities(text: str, existing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add the entities Telegram detects on its own (commands, mentions, URLs, hashtags, e-mail)."""
    taken: list[tuple[int, int]] = [
        (e["offset"], e["offset"] + e["length"])
        for e in existing
        if e["type"] in {"code", "pre", "text_link", "text_mention", "custom_emoji"}
    ]
    found: list[dict[str, Any]] = []
    for kind, pattern in _AUTO_PATTERNS:
        for match in pattern.finditer(text):
            start = utf16_len(text[: match.start()])
            length = utf16_len(match.group(0))
            end = start + length
            if any(start < b and a < end for a, b in taken):
                continue
            found.append({"type": kind, "offset": start, "length": length})
            taken.append((start, end))
    return sort_entities([*existing, *found])


_MD2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_MD2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
}


def _md2_marker(source: str, i: int) -> tuple[str, str] | None:
    if source.startswith("__", i):
        return "__", "underline"
    if source.startswith("||", i):
        return "||", "spoiler"
    return {"*": ("*", "bold"), "_": ("_", "italic"), "~": ("~", "strikethrough")}.get(source[i])


def _md2_closing(source: str, start: int, token: str) -> int:
    """Index of the next unescaped ``token`` at or after ``start``, or -1."""
    j = start
    while j < len(source):
        if source[j] == "\\":
            j += 2
            continue
        if source.startswith(token, j):
            return j
        j += 1
    return -1


def _md2_unescape(raw: str) -> str:
    return re.sub(r"\\(.)", r"\1", raw, flags=re.DOTALL)


def parse_markdown_v2(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse MarkdownV2 like Telegram: unescaped reserved characters are errors."""
    out: list[str] = []
    out_len = 0
    stack: list[tuple[str, str, int, int]] = []  # token, entity type, start, byte offset
    entities: list[dict[str, Any]] = []
    quote_start: int | None = None
    i = 0
    n = len(source)

    def emit(text: str) -> None:
        nonlocal out_len
        out.append(text)
        out_len += utf16_len(text)

    while i < n:
        ch = source[i]
        at_line_start = i == 0 or source[i - 1] == "\n"
        if ch == "\\":
            if i + 1 >= n or not 0 < ord(source[i + 1]) < 127:
                raise EntityParseError("Character '\\' is reserved and must be escaped")
            emit(source[i + 1])
            i += 2
            continue
        if ch == ">" and at_line_start:
            if quote_start is None:
                quote_start = out_len
            i += 1
            continue
        if ch == "\n" and quote_start is not None and not source.startswith(">", i + 1):
            if out_len > quote_start:
                entities.append(
                    {"type": "blockquote", "offset": quote_start, "length": out_len - quote_start}
                )
            quote_start = None
        if ch == "`":
            token = "```" if source.startswith("```", i) else "`"
            end = _md2_closing(source, i + len(token), token)
            if end == -1:
                kind = "Pre" if token == "```" else "Code"
                raise EntityParseError(
                    f"Can't find end of {kind} entity at byte offset {_byte_offset(source, i)}"
                )
            body = source[i + len(token) : end]
            entity: dict[str, Any] = {"type": "pre" if token == "```" else "code"}
            if token == "```":
                first, newline, rest = body.partition("\n")
                if newline and first and not any(c.isspace() for c in first):
                    entity["language"] = first
                    body = rest
            text = _md2_unescape(body)
            start = out_len
            emit(text)
            if text:
                entities.append({**entity, "offset": start, "length": out_len - start})
            i = end + len(token)
            continue
        if ch == "[":
            stack.append(("]", "text_link", out_len, _byte_offset(source, i)))
            i += 1
            continue
        if ch == "]" and stack and stack[-1][0] == "]":
            _, _, start, _ = stack.pop()
            if not source.startswith("(", i + 1):
                raise EntityParseError("Character ']' is reserved and must be escaped")
            close = _md2_closing(source, i + 2, ")")
            if close == -1:
                raise EntityParseError(
                    f"Can't find end of a URL at byte offset {_byte_offset(source, i + 1)}"
                )
            url = _md2_unescape(source[i + 2 : close])
            if out_len > start:
                entities.append(
                    {"type": "text_link", "url": url, "offset": start, "length": out_len - start}
                )
            i = close + 1
            continue
        marker = _md2_marker(source, i)
        if marker is not None:
            token, kind = marker
            if stack and stack[-1][0] == token:
                _, _, start, _ = stack.pop()
                if out_len > start:
                    entities.append({"type": kind, "offset": start, "length": out_len - start})
            else:
                stack.append((token, kind, out_len, _byte_offset(source, i)))
            i += len(token)
            continue
        if ch in _MD2_RESERVED:
            raise EntityParseError(
                f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
            )
        emit(ch)
        i += 1
    if quote_start is not None and out_len > quote_start:
        entities.append(
            {"type": "blockquote", "offset": quote_start, "length": out_len - quote_start}
        )
    if stack:
        _, kind, _, offset = stack[-1]
        raise EntityParseError(
            f"Can't find end of {_MD2_NAMES[kind]} entity at byte offset {offset}"
        )
    return "".join(out), sort_entities(entities)


def parse_markdown(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse legacy Markdown: *bold*, _italic_, `code`, ```pre```, [text](url)."""
    out: list[str] = []
    out_len = 0
    entities: list[dict[str, Any]] = []
    i = 0
    n = len(source)
    while i < n:
        ch = source[i]
        if ch == "\\" and i + 1 < n and source[i + 1] in "_*`[":
            out.append(source[i + 1])
            out_len += 1
            i += 2
            continue
        if ch in "*_`[":
            token = "```" if source.startswith("```", i) else ch
            closer = "]" if ch == "[" else token
            end = source.find(closer, i + len(token))
            if end == -1:
                raise EntityParseError(
                    "Can't find end of the entity starting at byte offset "
                    f"{_byte_offset(source, i)}"
                )
            body = source[i + len(token) : end]
            entity: dict[str, Any] = {
                "*": {"type": "bold"},
                "_": {"type": "italic"},
                "`": {"type": "code"},
                "```": {"type": "pre"},
                "[": {"type": "text_link"},
            }[token]
            next_i = end + len(closer)
            if ch == "[":
                if not source.startswith("(", next_i) or (close := source.find(")", next_i)) == -1:
                    raise EntityParseError(
                        "Can't find end of the entity starting at byte offset "
                        f"{_byte_offset(source, i)}"
                    )
                entity = {"type": "text_link", "url": source[next_i + 1 : close]}
                next_i = close + 1
            start = out_len
            out.append(body)
            out_len += utf16_len(body)
            if body:
                entities.append({**entity, "offset": start, "length": out_len - start})
            i = next_i
            continue
        out.append(ch)
        out_len += utf16_len(ch)
        i += 1
    return "".join(out), sort_entities(entities)

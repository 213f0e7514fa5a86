"""A validator for the HTML subset Telegram accepts with ``parse_mode=HTML``.

Telegram rejects a message with "can't parse entities" on unknown tags, unbalanced tags, a bare
``<`` or ``&``, or an unsupported named entity; it counts the 4,096-character limit on the
visible text after entity parsing. Checking answers at load time turns those runtime failures
into ``knowledge check`` errors.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

# Telegram's limit on a message's text (after entities are parsed), in UTF-16 code units.
MAX_MESSAGE_LENGTH = 4096
# Telegram's limit on a media caption, counted the same way.
MAX_CAPTION_LENGTH = 1024

# Tag -> allowed attributes (Bot API "HTML style"). span/tg-spoiler, tg-emoji and expandable
# blockquotes are part of the subset as well.
ALLOWED_TAGS: dict[str, frozenset[str]] = {
    "b": frozenset(),
    "strong": frozenset(),
    "i": frozenset(),
    "em": frozenset(),
    "u": frozenset(),
    "ins": frozenset(),
    "s": frozenset(),
    "strike": frozenset(),
    "del": frozenset(),
    "span": frozenset({"class"}),
    "tg-spoiler": frozenset(),
    "a": frozenset({"href"}),
    "tg-emoji": frozenset({"emoji-id"}),
    "code": frozenset({"class"}),
    "pre": frozenset(),
    "blockquote": frozenset({"expandable"}),
}
HREF_SCHEMES = ("http://", "https://", "tg://", "mailto:")

_TAG_RE = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>\"']+))?)*)\s*>"
)
_ATTR_RE = re.compile(r"([a-zA-Z-]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>\"']+)))?")
_ENTITY_RE = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")


@dataclass(frozen=True)
class HtmlIssue:
    """A problem found in a Telegram HTML text; ``offset`` is the character index."""

    offset: int
    message: str


def utf16_len(text: str) -> int:
    """The length Telegram measures: UTF-16 code units (emoji outside the BMP count twice)."""
    return len(text.encode("utf-16-le")) // 2


def check_html(text: str) -> tuple[list[HtmlIssue], int]:
    """Validate Telegram HTML; return the issues and the visible length in UTF-16 units."""
    issues: list[HtmlIssue] = []
    stack: list[tuple[str, int]] = []
    visible: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "<":
            m = _TAG_RE.match(text, i)
            if not m:
                issues.append(HtmlIssue(i, "unescaped '<' (write &lt;)"))
                i += 1
                continue
            closing, name, attrs = m.group(1) == "/", m.group(2).lower(), m.group(3)
            if name not in ALLOWED_TAGS:
                if not closing:  # the closing tag of an unsupported tag adds nothing new
                    issues.append(HtmlIssue(i, f"tag <{name}> is not supported by Telegram"))
            elif closing:
                if not stack or stack[-1][0] != name:
                    expected = f"</{stack[-1][0]}>" if stack else "nothing"
                    issues.append(HtmlIssue(i, f"unbalanced </{name}> (expected {expected})"))
                    # Recover: pop up to the matching tag if it is open at all.
                    if any(t == name for t, _ in stack):
                        while stack and stack.pop()[0] != name:
                            pass
                else:
                    stack.pop()
            else:
                issues.extend(_check_open_tag(name, attrs, i, stack))
                stack.append((name, i))
            i = m.end()
            continue
        if ch == "&":
            m = _ENTITY_RE.match(text, i)
            if not m:
                issues.append(HtmlIssue(i, "unescaped '&' or unsupported entity (write &amp;)"))
                visible.append(ch)
                i += 1
                continue
            visible.append(html.unescape(m.group(0)))
            i = m.end()
            continue
        if ch == ">":
            # Telegram tolerates a bare '>' but it is a classic sign of a broken tag.
            visible.append(ch)
            i += 1
            continue
        visible.append(ch)
        i += 1
    for name, pos in stack:
        issues.append(HtmlIssue(pos, f"<{name}> is never closed"))
    return issues, utf16_len("".join(visible).strip())


def _check_open_tag(
    name: str, attrs: str, offset: int, stack: list[tuple[str, int]]
) -> list[HtmlIssue]:
    issues: list[HtmlIssue] = []
    open_names = {t for t, _ in stack}
    if open_names & {"code", "pre"} and not (name == "code" and stack[-1][0] == "pre"):
        issues.append(HtmlIssue(offset, f"<{name}> inside <code>/<pre> is not allowed"))
    if name == "blockquote" and "blockquote" in open_names:
        issues.append(HtmlIssue(offset, "nested <blockquote> is not allowed"))
    found: dict[str, str | None] = {}
    for m in _ATTR_RE.finditer(attrs):
        value = next((g for g in m.groups()[1:] if g is not None), None)
        found[m.group(1).lower()] = value
    for attr in found:
        if attr not in ALLOWED_TAGS[name]:
            issues.append(HtmlIssue(offset, f"attribute {attr!r} is not allowed on <{name}>"))
    if name == "a":
        href = found.get("href")
        if not href:
            issues.append(HtmlIssue(offset, "<a> needs an href"))
        elif not html.unescape(href).startswith(HREF_SCHEMES):
            issues.append(HtmlIssue(offset, f"link {href!r} must use http(s)://, tg:// or mailto:"))
    if name == "span" and found.get("class") != "tg-spoiler":
        issues.append(HtmlIssue(offset, '<span> is only allowed as <span class="tg-spoiler">'))
    return issues


def visible_text(text: str) -> str:
    """Text with tags removed and entities decoded (for indexing answers)."""
    return html.unescape(_TAG_RE.sub(" ", text))


def fit_html(text: str, limit: int = MAX_MESSAGE_LENGTH, mark: str = "…") -> str:
    """Valid Telegram HTML cut to at most `limit` visible characters (UTF-16 units, counted
    after entity parsing, as Telegram counts), never inside a tag or an entity; tags left open
    are closed after `mark`. Text that fits comes back unchanged."""
    tokens: list[tuple[str, int, str | None]] = []  # (text, visible width, tag name or None)
    i = 0
    while i < len(text):
        found = _TAG_RE.match(text, i) if text[i] == "<" else None
        if found is not None:
            name = found.group(2).lower()
            tokens.append((found.group(0), 0, ("/" if found.group(1) else "") + name))
            i = found.end()
            continue
        found = _ENTITY_RE.match(text, i) if text[i] == "&" else None
        token = found.group(0) if found is not None else text[i]
        tokens.append((token, utf16_len(html.unescape(token)), None))
        i += len(token)
    if sum(width for _, width, _ in tokens) <= limit:
        return text
    budget = limit - utf16_len(mark)
    kept: list[str] = []
    open_tags: list[str] = []
    for token, width, tag in tokens:
        if tag is None:
            if width > budget:
                break
            budget -= width
        elif tag.startswith("/"):
            if open_tags and open_tags[-1] == tag[1:]:
                open_tags.pop()
        else:
            open_tags.append(tag)
        kept.append(token)
    return "".join(kept) + mark + "".join(f"</{tag}>" for tag in reversed(open_tags))

"""Load and validate the knowledge directory, reporting every problem with file and line.

Layout: ``<dir>/faq/*.yaml`` (entries), ``<dir>/synonyms/<lang>.yaml`` (synonym groups) and
``<dir>/smalltalk.yaml``. A directory without a ``faq/`` sub-directory is read as the FAQ
directory itself (handy for tests and single-folder deployments).

Severity: errors make the knowledge unusable as a whole (``FaqService`` keeps the last good
index); warnings are quality issues. Files whose header says they are sample content must meet
the sample bar (>= 3 alternatives and >= 2 tests per language) as errors; real content gets
warnings for the same shortfalls so a bureau can start small.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.faq.index import Synonyms
from bot.faq.models import FaqEntry, KnowledgeBase, Problem, Severity
from bot.faq.normalize import normalize
from bot.faq.telegram_html import MAX_MESSAGE_LENGTH, check_html

MIN_ALTERNATIVES = 3
MIN_TESTS = 2
_LANG_RE = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})?$")
LineMap = dict[tuple[str, str, str], int]
_META_KEYS = frozenset({"id", "category", "updated", "clarification", "related", "links"})


class LineStr(str):
    """A string that remembers the 1-based line it came from."""

    line: int | None = None


class LineDict(dict[Any, Any]):
    """A mapping that remembers its own line and each key's line."""

    line: int | None = None
    key_lines: dict[Any, int]


class LineList(list[Any]):
    """A sequence that remembers its own line."""

    line: int | None = None


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records line numbers and reports duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicate_keys: list[tuple[int, str]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        result = LineDict()
        result.line = node.start_mark.line + 1
        result.key_lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in result:
                self.duplicate_keys.append((key_node.start_mark.line + 1, str(key)))
            result[key] = self.construct_object(value_node, deep=True)
            result.key_lines[key] = key_node.start_mark.line + 1
        return result

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> list[Any]:
        result = LineList(self.construct_object(child, deep=True) for child in node.value)
        result.line = node.start_mark.line + 1
        return result


def _construct_str(loader: _LineLoader, node: yaml.ScalarNode) -> LineStr:
    s = LineStr(loader.construct_scalar(node))
    s.line = node.start_mark.line + 1
    return s


_LineLoader.add_constructor("tag:yaml.org,2002:str", _construct_str)
_LineLoader.add_constructor("tag:yaml.org,2002:map", _LineLoader.construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _LineLoader.construct_sequence)


def _line(obj: object, default: int | None = None) -> int | None:
    return getattr(obj, "line", None) or default


def _read_yaml(path: Path, shown: str, problems: list[Problem]) -> Any:
    """Parse one YAML file; syntax errors and duplicate keys become problems."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(shown, None, "error", f"cannot read file: {exc}"))
        return None
    loader = _LineLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        # Point at where the broken construct starts (context), e.g. an unterminated quote,
        # and say where the parser noticed it.
        mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        what = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        found = getattr(exc, "problem_mark", None)
        if context and found is not None and found is not mark:
            what = f"{context}: {what} (line {found.line + 1})"
        problems.append(Problem(shown, line, "error", f"YAML syntax error: {what}"))
        return None
    finally:
        loader.dispose()
    for line, key in loader.duplicate_keys:
        problems.append(Problem(shown, line, "error", f"duplicate key {key!r}"))
    return data


def _is_sample(path: Path) -> bool:
    try:
        head = path.read_text(encoding="utf-8")[:500].lower()
    except (OSError, UnicodeDecodeError):
        return False
    return "sample content" in head


def load_knowledge(
    path: Path, required_langs: Iterable[str] = ("en", "zh")
) -> tuple[KnowledgeBase, list[Problem]]:
    """Load a knowledge directory; return the knowledge base and every problem found."""
    path = Path(path)
    required = tuple(required_langs)
    problems: list[Problem] = []
    kb = KnowledgeBase()
    faq_dir = path / "faq" if (path / "faq").is_dir() else path
    if not faq_dir.is_dir():
        problems.append(Problem(str(path), None, "error", "knowledge directory not found"))
        return kb, problems
    files = sorted(p for p in faq_dir.glob("*.y*ml") if not p.name.startswith("_"))
    lines: LineMap = {}
    if not files:
        problems.append(Problem(str(faq_dir), None, "error", "no FAQ files (*.yaml) found"))
    for file in files:
        for entry in _load_faq_file(file, _display(file), required, problems, lines):
            if entry.id in kb.entries:
                first = kb.entries[entry.id]
                problems.append(
                    Problem(
                        entry.source_file,
                        entry.source_line,
                        "error",
                        f"duplicate id {entry.id!r} (first at {first.source_file}:"
                        f"{first.source_line})",
                    )
                )
                continue
            kb.entries[entry.id] = entry
    _check_cross_entry(kb, problems, lines)
    syn_dir = path / "synonyms"
    if syn_dir.is_dir():
        for file in sorted(syn_dir.glob("*.y*ml")):
            syn = _load_synonyms(file, problems)
            if syn is not None:
                kb.synonyms[file.stem] = syn
    small = path / "smalltalk.yaml"
    if small.is_file():
        kb.smalltalk = _load_smalltalk(small, problems)
    return kb, problems


def shipped_dir(path: Path) -> Path:
    """The folder of the FAQ's e5 vectors that come with the content (`knowledge embed`)."""
    faq_dir = path / "faq" if (path / "faq").is_dir() else path
    return faq_dir / "embeddings"


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _load_faq_file(
    path: Path, shown: str, required: tuple[str, ...], problems: list[Problem], lines: LineMap
) -> list[FaqEntry]:
    data = _read_yaml(path, shown, problems)
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        problems.append(
            Problem(shown, _line(data, 1), "error", "expected a top-level 'entries:' list")
        )
        return []
    sample = _is_sample(path)
    entries: list[FaqEntry] = []
    for raw in data["entries"]:
        line = _line(raw)
        if not isinstance(raw, dict):
            problems.append(Problem(shown, line, "error", "an entry must be a mapping"))
            continue
        entry = _parse_entry(raw, shown, line, required, sample, problems, lines)
        if entry is not None:
            entries.append(entry)
    return entries


def _parse_entry(
    raw: dict[Any, Any],
    shown: str,
    line: int | None,
    required: tuple[str, ...],
    sample: bool,
    problems: list[Problem],
    lines: LineMap,
) -> FaqEntry | None:
    key_lines: dict[Any, int] = getattr(raw, "key_lines", {})
    meta: dict[str, Any] = {}
    content: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _META_KEYS:
            meta[key] = value
        elif isinstance(key, str) and _LANG_RE.match(key):
            content[key] = value
        else:
            # Reported, then ignored, so the rest of the entry is still checked.
            problems.append(
                Problem(shown, key_lines.get(key, line), "error", f"unknown field {key!r}")
            )
    ident = str(meta.get("id", "?"))
    try:
        entry = FaqEntry(**meta, content=content, source_file=shown, source_line=line)
    except ValidationError as exc:
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            where = _locate(raw, err["loc"], line)
            problems.append(
                Problem(shown, where, "error", f"entry {ident}: {'.'.join(loc)}: {err['msg']}")
            )
        return None
    _record_lines(entry.id, raw, content, lines)
    for lang in required:
        if lang not in entry.content:
            problems.append(
                Problem(shown, line, "error", f"entry {ident}: missing language {lang!r}")
            )
    level: Severity = "error" if sample else "warning"
    bar = " (sample content must meet it)" if sample else ""
    for lang, lc in entry.content.items():
        block = content[lang]
        block_line = _line(block, key_lines.get(lang, line))
        if len(lc.alternatives) < MIN_ALTERNATIVES:
            problems.append(
                Problem(
                    shown,
                    block_line,
                    level,
                    f"entry {ident} [{lang}]: {len(lc.alternatives)} alternatives, "
                    f"want >= {MIN_ALTERNATIVES}{bar}",
                )
            )
        if len(lc.tests) < MIN_TESTS:
            problems.append(
                Problem(
                    shown,
                    block_line,
                    level,
                    f"entry {ident} [{lang}]: {len(lc.tests)} tests, want >= {MIN_TESTS}{bar}",
                )
            )
        answer_raw = block.get("answer")
        answer_line = _line(answer_raw, block_line)
        issues, visible = check_html(lc.answer)
        for issue in issues:
            problems.append(
                Problem(
                    shown,
                    _offset_line(answer_raw, answer_line, issue.offset),
                    "error",
                    f"entry {ident} [{lang}]: answer HTML: {issue.message}",
                )
            )
        if visible > MAX_MESSAGE_LENGTH:
            problems.append(
                Problem(
                    shown,
                    answer_line,
                    "error",
                    f"entry {ident} [{lang}]: answer is {visible} characters after rendering, "
                    f"Telegram allows {MAX_MESSAGE_LENGTH}",
                )
            )
    return entry


def _offset_line(raw: object, line: int | None, offset: int) -> int | None:
    # Block scalars (answer: |) start on the next line; count newlines up to the offset.
    if not isinstance(raw, str) or line is None:
        return line
    return line + raw.count("\n", 0, offset) + (1 if "\n" in raw.rstrip("\n") else 0)


def _locate(raw: Any, loc: tuple[int | str, ...], default: int | None) -> int | None:
    node = raw
    found = default
    for part in loc:
        if part == "content":
            continue
        key_lines = getattr(node, "key_lines", None)
        if isinstance(node, dict) and part in node:
            if key_lines and part in key_lines:
                found = key_lines[part]
            node = node[part]
            found = _line(node, found)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            found = _line(node, found)
        else:
            break
    return found


def _record_lines(
    entry_id: str, raw: dict[Any, Any], content: dict[str, Any], lines: LineMap
) -> None:
    """Remember the line of every phrasing, test and related id (pydantic drops them)."""
    for rel in raw.get("related") or []:
        if isinstance(rel, LineStr) and rel.line:
            lines[(entry_id, "related", str(rel))] = rel.line
    for lang, block in content.items():
        if not isinstance(block, dict):
            continue
        items = [block.get("question"), *(block.get("alternatives") or [])]
        items += list(block.get("tests") or [])
        for item in items:
            if isinstance(item, LineStr) and item.line:
                lines.setdefault((entry_id, lang, str(item)), item.line)


def _check_cross_entry(kb: KnowledgeBase, problems: list[Problem], lines: LineMap) -> None:
    seen: dict[tuple[str, str], str] = {}
    for entry in kb.entries.values():
        for lang, loc in entry.content.items():
            own: set[str] = set()
            for phrase in [loc.question, *loc.alternatives]:
                norm = normalize(phrase)
                severity: Severity
                if not norm:
                    severity, what = "error", "is empty after normalisation"
                elif norm in own:
                    severity, what = "warning", "repeats another of the same entry"
                else:
                    own.add(norm)
                    other = seen.setdefault((lang, norm), entry.id)
                    if other == entry.id:
                        continue
                    severity, what = "error", f"is also a phrasing of entry {other}"
                problems.append(
                    Problem(
                        entry.source_file,
                        lines.get((entry.id, lang, phrase), entry.source_line),
                        severity,
                        f"entry {entry.id} [{lang}]: phrasing {phrase!r} {what}",
                    )
                )
            for test in loc.tests:
                if normalize(test) in own:
                    problems.append(
                        Problem(
                            entry.source_file,
                            lines.get((entry.id, lang, test), entry.source_line),
                            "warning",
                            f"entry {entry.id} [{lang}]: test {test!r} equals a phrasing, "
                            "so it measures nothing",
                        )
                    )
        for rel in entry.related:
            if rel == entry.id:
                problems.append(
                    Problem(
                        entry.source_file,
                        lines.get((entry.id, "related", rel), entry.source_line),
                        "warning",
                        f"entry {entry.id}: related to itself",
                    )
                )
            elif rel not in kb.entries:
                problems.append(
                    Problem(
                        entry.source_file,
                        lines.get((entry.id, "related", rel), entry.source_line),
                        "error",
                        f"entry {entry.id}: related id {rel!r} does not exist",
                    )
                )


def _load_synonyms(path: Path, problems: list[Problem]) -> Synonyms | None:
    shown = _display(path)
    data = _read_yaml(path, shown, problems)
    if data is None:
        return None
    groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(groups, list):
        problems.append(Problem(shown, _line(data, 1), "error", "expected 'groups:' (a list)"))
        return None
    good: list[list[str]] = []
    for group in groups:
        if not isinstance(group, list) or not all(isinstance(p, str) for p in group):
            problems.append(
                Problem(
                    shown,
                    _line(group, _line(groups)),
                    "error",
                    f"synonym group {group!r} must be a list of strings (quote yes/no/true)",
                )
            )
            continue
        good.append(group)
    return Synonyms.from_groups(good)


def _load_smalltalk(path: Path, problems: list[Problem]) -> dict[str, dict[str, list[str]]]:
    shown = _display(path)
    data = _read_yaml(path, shown, problems)
    out: dict[str, dict[str, list[str]]] = {}
    if data is None:
        return out
    if not isinstance(data, dict):
        problems.append(Problem(shown, 1, "error", "expected a mapping of kind -> lang -> phrases"))
        return out
    for kind, langs in data.items():
        if kind not in ("greeting", "thanks", "bye", "filler") or not isinstance(langs, dict):
            problems.append(
                Problem(
                    shown,
                    _line(langs, getattr(data, "key_lines", {}).get(kind)),
                    "error",
                    f"unknown small-talk kind {kind!r} or bad shape",
                )
            )
            continue
        out[kind] = {
            str(lang): [str(p) for p in phrases]
            for lang, phrases in langs.items()
            if isinstance(phrases, list)
        }
    return out

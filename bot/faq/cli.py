"""``safewell knowledge …`` commands: check, ask and test.

The coordinator wires ``add_commands`` into the main argparse parser; every sub-command sets
``func(args, *ignored) -> int`` (extra positional arguments such as settings are ignored), whose
return value is the exit code. The ``cmd_*`` functions take an output stream for tests.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from bot.faq.loader import load_knowledge
from bot.faq.matcher import Matcher, MatchResult
from bot.faq.models import KnowledgeBase, Problem

DEFAULT_KNOWLEDGE = Path("knowledge")


def add_commands(subparsers: Any) -> None:
    """Add the ``knowledge`` command (check / ask / test) to an argparse subparsers object."""
    knowledge = subparsers.add_parser("knowledge", help="check, query and test the FAQ knowledge")
    sub = knowledge.add_subparsers(dest="knowledge_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--knowledge", type=Path, default=DEFAULT_KNOWLEDGE, help="knowledge directory"
        )
        p.add_argument(
            "--langs", default="en,zh", help="required languages, comma-separated (default en,zh)"
        )

    check = sub.add_parser("check", help="validate the knowledge files (exit 1 on errors)")
    common(check)
    check.set_defaults(func=lambda args, *_: cmd_check(args))

    ask = sub.add_parser("ask", help="match a question ('-' reads one per line from stdin)")
    common(ask)
    ask.add_argument("question", help="the question, or '-' for stdin (JSON lines out)")
    ask.add_argument("--lang", default="en", help="the citizen's language (default en)")
    ask.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ask.set_defaults(func=lambda args, *_: cmd_ask(args))

    test = sub.add_parser("test", help="run every entry's tests: phrasings, report P@1 and MRR")
    common(test)
    test.add_argument("--min-p1", type=float, default=0.95, help="fail below this P@1")
    test.add_argument("--worst", type=int, default=10, help="how many confusions to list")
    test.set_defaults(func=lambda args, *_: cmd_test(args))


def _load(args: argparse.Namespace) -> tuple[KnowledgeBase, list[Problem]]:
    langs = tuple(code for code in args.langs.split(",") if code)
    return load_knowledge(args.knowledge, langs)


def _errors(problems: list[Problem], out: TextIO) -> bool:
    errors = [p for p in problems if p.severity == "error"]
    for p in errors:
        print(p, file=out)
    return bool(errors)


def cmd_check(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print ``file:line: severity: message`` per problem; exit 1 when there is an error."""
    out = out or sys.stdout
    kb, problems = _load(args)
    for p in problems:
        print(p, file=out)
    n_err = sum(p.severity == "error" for p in problems)
    n_warn = len(problems) - n_err
    print(
        f"{len(kb.entries)} entries, languages {sorted(kb.languages)}: "
        f"{n_err} error(s), {n_warn} warning(s)",
        file=out,
    )
    return 1 if n_err else 0


def _result_json(query: str, lang: str, result: MatchResult) -> dict[str, Any]:
    return {
        "query": query,
        "lang": lang,
        "outcome": result.outcome,
        "results": [{"id": s.entry_id, "score": s.score} for s in result.results],
    }


def cmd_ask(
    args: argparse.Namespace, out: TextIO | None = None, stdin: TextIO | None = None
) -> int:
    """Print the top five entries and the outcome (JSON lines when reading stdin)."""
    out = out or sys.stdout
    kb, problems = _load(args)
    if _errors(problems, sys.stderr):
        return 1
    matcher = Matcher(kb)
    if args.question == "-":
        for line in stdin or sys.stdin:
            query = line.strip()
            if query:
                result = matcher.match(query, args.lang)
                print(
                    json.dumps(_result_json(query, args.lang, result), ensure_ascii=False), file=out
                )
        return 0
    result = matcher.match(args.question, args.lang)
    if args.json:
        print(
            json.dumps(_result_json(args.question, args.lang, result), ensure_ascii=False), file=out
        )
        return 0
    print(f"outcome: {result.outcome} (index {result.lang})", file=out)
    for rank, s in enumerate(result.results, 1):
        question = kb.entries[s.entry_id].text(result.lang).question
        print(f"{rank}. {s.score:.3f}  {s.entry_id}  {question}", file=out)
    return 0


def cmd_test(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the tests: phrasings; print P@1, MRR, outcomes and the worst confusions."""
    out = out or sys.stdout
    kb, problems = _load(args)
    if _errors(problems, sys.stderr):
        return 1
    matcher = Matcher(kb)
    confusions: Counter[tuple[str, str, str]] = Counter()
    examples: dict[tuple[str, str, str], str] = {}
    outcomes: Counter[str] = Counter()
    total = hits = wrong_answers = 0
    rr = 0.0
    per_lang: dict[str, list[int]] = {}
    for entry in kb.entries.values():
        for lang, content in entry.content.items():
            for phrase in content.tests:
                result = matcher.match(phrase, lang)
                ids = [s.entry_id for s in result.results]
                total += 1
                outcomes[result.outcome] += 1
                stats = per_lang.setdefault(lang, [0, 0])
                stats[1] += 1
                if ids and ids[0] == entry.id:
                    hits += 1
                    stats[0] += 1
                else:
                    if result.outcome == "answer":
                        wrong_answers += 1
                    key = (lang, entry.id, ids[0] if ids else "-")
                    confusions[key] += 1
                    examples.setdefault(key, phrase)
                if entry.id in ids:
                    rr += 1 / (ids.index(entry.id) + 1)
    if not total:
        print("no tests: phrasings found", file=out)
        return 1
    p1 = hits / total
    print(f"tests: {total}  P@1: {p1:.3f}  MRR: {rr / total:.3f}", file=out)
    for lang, (h, n) in sorted(per_lang.items()):
        print(f"  {lang}: P@1 {h / n:.3f} ({h}/{n})", file=out)
    print(
        f"outcomes: answer {outcomes['answer']}, suggest {outcomes['suggest']}, "
        f"none {outcomes['none']}; confident but wrong: {wrong_answers}",
        file=out,
    )
    if confusions:
        print("worst confusions (lang: expected -> got, count, example):", file=out)
        for (lang, want, got), count in confusions.most_common(args.worst):
            example = examples[(lang, want, got)]
            print(f"  {lang}: {want} -> {got}  x{count}  {example!r}", file=out)
    if p1 < args.min_p1:
        print(f"FAIL: P@1 {p1:.3f} < --min-p1 {args.min_p1}", file=out)
        return 1
    return 0

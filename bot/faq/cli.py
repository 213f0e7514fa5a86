"""``safewell knowledge …`` commands: check, ask, test, embed and gaps.

The coordinator wires ``add_commands`` into the main argparse parser; every sub-command sets
``func(args, settings=None) -> int`` whose return value is the exit code. ``settings`` (the
``safewell`` CLI passes its ``Settings``) supplies the knowledge directory when ``--knowledge``
is not given (``FAQ_KNOWLEDGE_DIR``), the matcher thresholds (``FAQ_ANSWER_THRESHOLD`` …) and,
for ``gaps``, the database. The ``cmd_*`` functions take an output stream for tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from bot.faq.loader import load_knowledge, shipped_dir
from bot.faq.matcher import (
    DEFAULT_ANSWER_THRESHOLD,
    DEFAULT_MARGIN,
    DEFAULT_SUGGEST_THRESHOLD,
    Matcher,
    MatchResult,
)
from bot.faq.models import KnowledgeBase, Problem

DEFAULT_KNOWLEDGE = Path("knowledge")


def add_commands(subparsers: Any) -> None:
    """Add the ``knowledge`` command (check / ask / test / gaps) to an argparse subparsers."""
    knowledge = subparsers.add_parser("knowledge", help="check, query and test the FAQ knowledge")
    sub = knowledge.add_subparsers(dest="knowledge_command", required=True)
    knowledge.set_defaults(uses_knowledge=False)  # --knowledge, checked by the loader

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--knowledge",
            type=Path,
            default=None,
            help="knowledge directory (default: FAQ_KNOWLEDGE_DIR, else ./knowledge)",
        )
        p.add_argument(
            "--langs", default="en,zh", help="required languages, comma-separated (default en,zh)"
        )

    check = sub.add_parser("check", help="validate the knowledge files (exit 1 on errors)")
    common(check)
    check.set_defaults(func=lambda args, settings=None, *_: cmd_check(args, settings=settings))

    ask = sub.add_parser("ask", help="match a question ('-' reads one per line from stdin)")
    common(ask)
    ask.add_argument("question", help="the question, or '-' for stdin (JSON lines out)")
    ask.add_argument("--lang", default="en", help="the citizen's language (default en)")
    ask.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ask.set_defaults(func=lambda args, settings=None, *_: cmd_ask(args, settings=settings))

    test = sub.add_parser("test", help="run every entry's tests: phrasings, report P@1 and MRR")
    common(test)
    test.add_argument("--min-p1", type=float, default=0.95, help="fail below this P@1")
    test.add_argument("--worst", type=int, default=10, help="how many confusions to list")
    test.set_defaults(func=lambda args, settings=None, *_: cmd_test(args, settings=settings))

    embed = sub.add_parser(
        "embed",
        help="ship the FAQ's and triage's e5 vectors in knowledge/ (a first start embeds "
        "nothing unchanged)",
    )
    common(embed)
    embed.set_defaults(func=lambda args, settings=None, *_: cmd_embed(args, settings=settings))

    gaps = sub.add_parser(
        "gaps", help="questions the FAQ could not answer (or got 👎), grouped, biggest first"
    )
    gaps.add_argument("--days", type=int, default=30, help="look back this many days (30)")
    gaps.add_argument("--limit", type=int, default=20, help="how many groups to print (20)")
    gaps.add_argument("--json", action="store_true", help="print JSON instead of a table")
    gaps.set_defaults(func=lambda args, settings=None, *_: cmd_gaps(args, settings))


def knowledge_dir(args: argparse.Namespace, settings: Any = None) -> Path:
    """``--knowledge`` if given, else the configured ``FAQ_KNOWLEDGE_DIR``, else ./knowledge."""
    if getattr(args, "knowledge", None) is not None:
        return Path(args.knowledge)
    faq = getattr(settings, "faq", None)
    configured = getattr(faq, "knowledge_dir", None)
    return Path(configured) if configured is not None else DEFAULT_KNOWLEDGE


def build_matcher(
    kb: KnowledgeBase, settings: Any = None, knowledge: Path | None = None
) -> Matcher:
    """A matcher with the thresholds from settings (FAQ_ANSWER_THRESHOLD …) where set, and the
    vectors shipped with the `knowledge` folder."""
    faq = getattr(settings, "faq", None)

    def pick(name: str, default: float) -> float:
        value = getattr(faq, name, None)
        return float(value) if isinstance(value, int | float) else default

    return Matcher(
        kb,
        answer_threshold=pick("answer_threshold", DEFAULT_ANSWER_THRESHOLD),
        suggest_threshold=pick("suggest_threshold", DEFAULT_SUGGEST_THRESHOLD),
        margin=pick("margin", DEFAULT_MARGIN),
        shipped=shipped_dir(knowledge) if knowledge is not None else None,
    )


def _load(args: argparse.Namespace, settings: Any = None) -> tuple[KnowledgeBase, list[Problem]]:
    langs = tuple(code for code in args.langs.split(",") if code)
    return load_knowledge(knowledge_dir(args, settings), langs)


def _errors(problems: list[Problem], out: TextIO) -> bool:
    errors = [p for p in problems if p.severity == "error"]
    for p in errors:
        print(p, file=out)
    return bool(errors)


def cmd_check(args: argparse.Namespace, out: TextIO | None = None, settings: Any = None) -> int:
    """Print ``file:line: severity: message`` per problem; exit 1 when there is an error."""
    out = out or sys.stdout
    kb, problems = _load(args, settings)
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


def _result_json(query: str, result: MatchResult) -> dict[str, Any]:
    # The language whose entries answered (a Chinese line is matched in Chinese whatever
    # --lang says), as the text output's "index" shows.
    return {
        "query": query,
        "lang": result.lang,
        "outcome": result.outcome,
        "results": [{"id": s.entry_id, "score": s.score} for s in result.results],
    }


def cmd_ask(
    args: argparse.Namespace,
    out: TextIO | None = None,
    stdin: TextIO | None = None,
    settings: Any = None,
) -> int:
    """Print the top five entries and the outcome (JSON lines when reading stdin)."""
    out = out or sys.stdout
    kb, problems = _load(args, settings)
    if _errors(problems, sys.stderr):
        return 1
    matcher = build_matcher(kb, settings, knowledge_dir(args, settings))
    if args.question == "-":
        for line in stdin or sys.stdin:
            query = line.strip()
            if query:
                result = matcher.match(query, args.lang)
                print(json.dumps(_result_json(query, result), ensure_ascii=False), file=out)
        return 0
    result = matcher.match(args.question, args.lang)
    if args.json:
        print(json.dumps(_result_json(args.question, result), ensure_ascii=False), file=out)
        return 0
    print(f"outcome: {result.outcome} (index {result.lang})", file=out)
    for rank, s in enumerate(result.results, 1):
        question = kb.entries[s.entry_id].text(result.lang).question
        print(f"{rank}. {s.score:.3f}  {s.entry_id}  {question}", file=out)
    return 0


def cmd_test(args: argparse.Namespace, out: TextIO | None = None, settings: Any = None) -> int:
    """Run the tests: phrasings; print P@1, MRR, outcomes and the worst confusions."""
    out = out or sys.stdout
    kb, problems = _load(args, settings)
    if _errors(problems, sys.stderr):
        return 1
    matcher = build_matcher(kb, settings, knowledge_dir(args, settings))
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


async def gaps_report(database_url: str, days: int, limit: int, as_json: bool, out: TextIO) -> int:
    """Migrate the database, then print the biggest groups of unanswered / 👎 questions."""
    # Imported here so ``knowledge check/ask/test`` never load the database stack.
    from bot.db.migrate import upgrade_async
    from bot.db.models import utcnow
    from bot.db.session import create_engine, create_sessionmaker
    from bot.faq.gaps import find_gaps

    await upgrade_async(database_url)
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            found = await find_gaps(session, since=utcnow() - timedelta(days=days))
    finally:
        await engine.dispose()
    shown = found[: max(limit, 0)]
    if as_json:
        rows = [
            {
                "example": g.example,
                "language": g.language,
                "count": g.count,
                "unanswered": g.unanswered,
                "disliked": g.disliked,
                "variants": g.variants,
                "entries": g.entries,
            }
            for g in shown
        ]
        print(json.dumps(rows, ensure_ascii=False, indent=2), file=out)
        return 0
    print(f"{len(found)} group(s) in the last {days} day(s); showing {len(shown)}", file=out)
    for g in shown:
        disliked = ""
        if g.disliked:
            worst = ", ".join(f"{eid} x{n}" for eid, n in sorted(g.entries.items()))
            disliked = f"  👎 {g.disliked}" + (f" ({worst})" if worst else "")
        print(f"{g.count:5d}  [{g.language}] {g.example}{disliked}", file=out)
        for variant in g.variants:
            if variant != g.example:
                print(f"         ~ {variant}", file=out)
    return 0


def cmd_gaps(args: argparse.Namespace, settings: Any, out: TextIO | None = None) -> int:
    """``knowledge gaps``: needs settings for ``DATABASE_URL``; exit 2 without them."""
    out = out or sys.stdout
    url = getattr(getattr(settings, "database", None), "url", None)
    if not isinstance(url, str):
        print("knowledge gaps: no database configured (DATABASE_URL)", file=sys.stderr)
        return 2
    if args.days < 1 or args.limit < 1:
        print("knowledge gaps: --days and --limit must be >= 1", file=sys.stderr)
        return 2
    return asyncio.run(gaps_report(url, args.days, args.limit, args.json, out))


def cmd_embed(args: argparse.Namespace, out: TextIO | None = None, settings: Any = None) -> int:
    """Embed every text the FAQ and triage read with e5 (from the cache where it has them) and
    write the vectors beside the content: `faq/embeddings/` and `triage/embeddings/`."""
    from bot.faq.service import FaqService
    from bot.triage import Triage
    from bot.triage.model import recording_embeddings, write_shipped

    out = out or sys.stdout
    knowledge = knowledge_dir(args, settings)
    langs = tuple(code for code in args.langs.split(",") if code)
    with recording_embeddings() as recorded:
        faq = FaqService(knowledge, langs)
        if _errors(faq.reload(), out):
            return 1
        Triage.load(knowledge / "triage")
    for path in write_shipped(recorded):
        print(f"{path}: {len(recorded[path])} texts", file=out)
    return 0

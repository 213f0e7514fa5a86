"""FAQ matcher accuracy on external evaluation sets (CovidFAQ, StackFAQ, Tianchi).

Run from the repo root: ``python -m benchmarks.faq_accuracy [--eval ../shared/eval]
[--split test|dev] [--calibrate]``. Each set's ``faqs.jsonl`` is loaded as an in-memory
knowledge base (question + alternative questions as phrasings, answer as the answer field);
nothing is copied into the repository. Tune on ``--split dev`` only; report ``test``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from bot.faq.index import Synonyms
from bot.faq.loader import load_knowledge
from bot.faq.matcher import Matcher
from bot.faq.models import FaqEntry, KnowledgeBase, LocalizedContent

SETS: dict[str, tuple[str, str, float]] = {
    # name: (folder, language, P@1 floor on test)
    "CovidFAQ": ("faq_en_covidfaq_jhu", "en", 0.72),
    "StackFAQ": ("faq_en_stackfaq", "en", 0.65),
    "Tianchi": ("faq_zh_tianchi_ncov_qq", "zh", 0.75),
}
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Query:
    """One labelled query."""

    text: str
    relevant: set[str]


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_set(folder: Path, lang: str, synonyms: dict[str, Synonyms]) -> KnowledgeBase:
    """Build an in-memory knowledge base from a set's faqs.jsonl."""
    kb = KnowledgeBase(synonyms=synonyms)
    for row in _read_jsonl(folder / "faqs.jsonl"):
        fid = str(row["faq_id"])
        alts = [str(a) for a in row.get("alt_questions") or []]  # type: ignore[attr-defined]
        content = LocalizedContent.model_construct(
            question=str(row["question"]),
            alternatives=alts,
            answer=str(row.get("answer") or ""),
            tests=[],
        )
        kb.entries[fid] = FaqEntry.model_construct(
            id=fid, category="eval", content={lang: content}, related=[], links=[]
        )
    return kb


def load_queries(folder: Path, split: str) -> list[Query]:
    """Dev/test queries following the eval README's split rules."""
    if (folder / "queries.jsonl").exists():
        rows = _read_jsonl(folder / "queries.jsonl")
        rows = rows[0::2] if split == "dev" else rows[1::2]
    else:
        rows = _read_jsonl(folder / f"queries_{split}.jsonl")
    return [Query(str(r["query"]), set(r["relevant"])) for r in rows]  # type: ignore[call-overload]


@dataclass
class Report:
    """Accuracy figures for one set."""

    name: str
    n: int
    p1: float
    mrr: float
    answered: float
    answered_wrong: float
    suggest_hit: float
    ms_per_query: float


def evaluate(matcher: Matcher, queries: list[Query], lang: str, name: str) -> Report:
    """P@1, MRR, share answered confidently, and the error rate among those answers."""
    hits = answered = wrong = suggest_hit = 0
    rr = 0.0
    start = time.perf_counter()
    for q in queries:
        result = matcher.match(q.text, lang)
        ids = [s.entry_id for s in result.results]
        top_ok = bool(ids) and ids[0] in q.relevant
        hits += top_ok
        for rank, eid in enumerate(ids, 1):
            if eid in q.relevant:
                rr += 1 / rank
                break
        if result.outcome == "answer":
            answered += 1
            wrong += not top_ok
        elif result.outcome == "suggest":
            suggest_hit += any(s.entry_id in q.relevant for s in result.suggestions)
    elapsed = (time.perf_counter() - start) * 1000 / max(len(queries), 1)
    n = max(len(queries), 1)
    return Report(
        name,
        len(queries),
        hits / n,
        rr / n,
        answered / n,
        wrong / max(answered, 1),
        suggest_hit / n,
        elapsed,
    )


def calibrate(matcher: Matcher, queries: list[Query], lang: str) -> None:
    """Print answered share / wrong-answer rate for a grid of thresholds (use on dev only)."""
    rows = []
    for q in queries:
        res = matcher.match(q.text, lang)
        rows.append(
            ([s.score for s in res.results], [s.entry_id in q.relevant for s in res.results])
        )
    print("  answer_thr margin  answered  wrong-among-answered")
    for thr in (0.5, 0.55, 0.6, 0.62, 0.65, 0.7, 0.75):
        for margin in (0.03, 0.06, 0.1):
            ans = wrong = 0
            for scores, ok in rows:
                if not scores:
                    continue
                second = scores[1] if len(scores) > 1 else 0.0
                if scores[0] >= thr and scores[0] - second >= margin:
                    ans += 1
                    wrong += not ok[0]
            print(
                f"  {thr:10.2f} {margin:6.2f}  {ans / len(rows):8.3f}  {wrong / max(ans, 1):8.3f}"
            )


def with_domain_packs(knowledge: Path, base: dict[str, Synonyms]) -> dict[str, Synonyms]:
    """Base synonyms plus the groups of every domain pack, per language."""
    out: dict[str, Synonyms] = {}
    for lang in ("en", "zh"):
        groups: list[list[str]] = []
        for file in [
            knowledge / "synonyms" / f"{lang}.yaml",
            *sorted((knowledge / "synonyms" / "domains").glob(f"*_{lang}.yaml")),
        ]:
            if file.is_file():
                groups.extend(yaml.safe_load(file.read_text(encoding="utf-8"))["groups"])
        out[lang] = Synonyms.from_groups(groups) if groups else base.get(lang, Synonyms())
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the accuracy benchmark and print a table; exit 1 if a test floor is missed."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--eval", type=Path, default=REPO / ".." / "shared" / "eval")
    ap.add_argument("--split", choices=("dev", "test"), default="test")
    ap.add_argument("--knowledge", type=Path, default=REPO / "knowledge", help="for synonyms")
    ap.add_argument("--no-synonyms", action="store_true")
    ap.add_argument(
        "--domain-synonyms",
        action="store_true",
        help="also apply knowledge/synonyms/domains/*_<lang>.yaml (health packs)",
    )
    ap.add_argument("--calibrate", action="store_true", help="threshold table (dev split)")
    args = ap.parse_args(argv)
    synonyms: dict[str, Synonyms] = {}
    if not args.no_synonyms:
        synonyms = load_knowledge(args.knowledge)[0].synonyms
        if args.domain_synonyms:
            synonyms = with_domain_packs(args.knowledge, synonyms)
    reports = []
    for name, (folder, lang, _floor) in SETS.items():
        path = args.eval / folder
        kb = load_set(path, lang, synonyms)
        matcher = Matcher(kb)
        queries = load_queries(path, args.split)
        if args.calibrate:
            print(f"{name} ({args.split})")
            calibrate(matcher, queries, lang)
        reports.append(evaluate(matcher, queries, lang, name))
    packs = "generic + domain packs" if args.domain_synonyms else "generic"
    print(f"split: {args.split}; synonyms: {'none' if args.no_synonyms else packs}")
    print(
        "| set | queries | P@1 | MRR | answered | wrong among answered | "
        "suggest has it | ms/query | floor |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    failed = False
    for r in reports:
        floor = SETS[r.name][2]
        ok = r.p1 >= floor
        failed |= not ok and args.split == "test"
        print(
            f"| {r.name} | {r.n} | {r.p1:.3f} | {r.mrr:.3f} | {r.answered:.3f} | "
            f"{r.answered_wrong:.3f} | {r.suggest_hit:.3f} | {r.ms_per_query:.2f} | "
            f"{floor:.2f} {'ok' if ok else 'MISS'} |"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

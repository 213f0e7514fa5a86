"""FAQ matcher accuracy on external evaluation sets (CovidFAQ, StackFAQ, Tianchi).

Run from the repo root: ``python -m benchmarks.faq_accuracy [--eval ../shared/eval]
[--split test|dev] [--calibrate]``. Each set's ``faqs.jsonl`` is loaded as an in-memory
knowledge base (question + alternative questions as phrasings, answer as the answer field);
nothing is copied into the repository. Tune on ``--split dev`` only; report ``test``.

Test-split looks in round two (issue 4): 1 (matcher unchanged from round one, thresholds
recalibrated): CovidFAQ P@1 0.724, StackFAQ 0.745, Tianchi 0.732 (floor 0.75 still missed).
2 (4th look overall; zh number conflicts and common-term candidate seeding, tuned on dev only:
Tianchi dev 0.754 -> 0.765): CovidFAQ 0.724, StackFAQ 0.745, Tianchi 0.745 (178/239; floor
0.75 = 180 still missed by two questions). 3 (5th look, for the README only, after the one-pass
synonym fix, Tianchi dev 0.762; a learned re-ranker was measured on dev and dropped): same
figures, Tianchi 0.745. 4 (6th look; Chinese scores weigh meaning, ``bot.faq.semantic``,
chosen on dev and the sample content's tests: Tianchi dev 0.762 -> 0.788): CovidFAQ 0.724,
StackFAQ 0.745 (English unchanged), Tianchi 0.770 (184/239; 0.776 with verbatim-duplicate ties
counted as shared, lexical alone 0.751).
``--calibrate`` (dev split only) chooses the answer / suggest / margin thresholds on the sample
content's tests and ``tests/faq/data/out_of_domain.yaml`` and prints the outcome rates; the
procedure is documented in ``bot/faq/matcher.py``.
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
from bot.faq.matcher import (
    DEFAULT_ANSWER_THRESHOLD,
    DEFAULT_MARGIN,
    DEFAULT_SUGGEST_THRESHOLD,
    Matcher,
)
from bot.faq.models import ELSEWHERE, FaqEntry, KnowledgeBase, LocalizedContent

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


# One question scored: the top scores (best first) and whether each of those entries is right.
Row = tuple[list[float], list[bool]]

OOD_FILE = REPO / "tests" / "faq" / "data" / "out_of_domain.yaml"
MAX_WRONG = 0.01  # confident-but-wrong allowed on the tuning rows: half the 2% target, for headroom
# Out-of-domain questions allowed a confident answer from a police entry (an answer from an
# ``elsewhere`` entry, "not ours, ask them", is the right one). Near-domain ones ("what time
# does the bank open" -> the bureau's office hours) share every known word with an entry, so a
# lexical matcher cannot get this to zero without losing most real answers.
MAX_OOD_WRONG = 0.10
MIN_SUGGEST_HIT = 0.9  # share of right top-3 suggestions kept above the suggest threshold
ANSWER_GRID = [round(0.20 + 0.01 * i, 2) for i in range(41)]  # 0.20 .. 0.60
MARGIN_GRID = [0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.10]
SUGGEST_GRID = [round(0.10 + 0.01 * i, 2) for i in range(21)]  # 0.10 .. 0.30


def scored_rows(matcher: Matcher, queries: list[Query], lang: str) -> list[Row]:
    """Scores and correctness of the top results of each query."""
    rows: list[Row] = []
    for q in queries:
        res = matcher.match(q.text, lang)
        rows.append(
            ([s.score for s in res.results], [s.entry_id in q.relevant for s in res.results])
        )
    return rows


def held_out_rows(kb: KnowledgeBase, matcher: Matcher) -> list[Row]:
    """The sample content's ``tests:`` phrasings (the held-out check)."""
    queries = [
        (Query(t, {e.id}), lang)
        for e in kb.entries.values()
        for lang, c in e.content.items()
        for t in c.tests
    ]
    return [r for q, lang in queries for r in scored_rows(matcher, [q], lang)]


def ood_rows(matcher: Matcher, path: Path = OOD_FILE) -> list[Row]:
    """Out-of-domain questions: only an ``elsewhere`` entry ("not ours") answers them right."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    elsewhere = {eid for eid, e in matcher.kb.entries.items() if e.category == ELSEWHERE}
    queries = [(Query(str(t), elsewhere), lang) for lang in ("en", "zh") for t in data[lang]]
    return [r for q, lang in queries for r in scored_rows(matcher, [q], lang)]


@dataclass
class Rates:
    """Outcome shares of a set of rows under given thresholds."""

    answered: float
    wrong: float  # among answered
    suggested: float
    suggest_hit: float  # right entry among the offered suggestions (share of all rows)
    none: float


def rates(rows: list[Row], answer: float, suggest: float, margin: float) -> Rates:
    """Apply the matcher's decision rule (``Matcher.decide``) to scored rows."""
    n = max(len(rows), 1)
    ans = wrong = sug = hit = none = 0
    for scores, ok in rows:
        if not scores or scores[0] < suggest:
            none += 1
            continue
        second = scores[1] if len(scores) > 1 else 0.0
        if scores[0] >= answer and scores[0] - second >= margin:
            ans += 1
            wrong += not ok[0]
        else:
            sug += 1
            offered = [good for s, good in zip(scores, ok, strict=True) if s >= suggest][:3]
            hit += any(offered)
    return Rates(ans / n, wrong / max(ans, 1), sug / n, hit / n, none / n)


def choose_thresholds(tuning: list[Row], ood: list[Row]) -> tuple[float, float, float]:
    """The documented procedure: (answer, suggest, margin) from tuning and out-of-domain rows.

    1. Answer threshold and margin: among the pairs whose confident-wrong rate on the tuning rows
       is <= ``MAX_WRONG`` and which answer <= ``MAX_OOD_WRONG`` of the out-of-domain
       questions from a police entry, the one answering the most tuning rows (ties: lower
       threshold, wider margin).
    2. Suggest threshold: the highest value that still keeps >= ``MIN_SUGGEST_HIT`` of the
       tuning rows whose right entry is in the top three above it, so out-of-domain questions
       get "none" as often as possible without losing the right suggestions.
    """
    best: tuple[float, float, float] | None = None
    for answer in ANSWER_GRID:
        for margin in MARGIN_GRID:
            r = rates(tuning, answer, 0.0, margin)
            o = rates(ood, answer, 0.0, margin)
            if r.wrong > MAX_WRONG or o.answered * o.wrong > MAX_OOD_WRONG:
                continue
            key = (r.answered, -answer, margin)
            if best is None or key > best:
                best = key
    if best is None:
        answer, margin = ANSWER_GRID[-1], MARGIN_GRID[-1]
    else:
        answer, margin = -best[1], best[2]
    reachable = sum(any(ok[:3]) for _, ok in tuning)
    suggest = SUGGEST_GRID[0]
    for value in SUGGEST_GRID:
        if value > answer:
            break
        kept = sum(any(k for s, k in zip(sc, ok, strict=True) if s >= value) for sc, ok in tuning)
        if kept >= MIN_SUGGEST_HIT * reachable:
            suggest = value
    return answer, suggest, margin


def calibrate(
    knowledge: Path, eval_rows: dict[str, list[Row]], ood_file: Path = OOD_FILE
) -> tuple[float, float, float]:
    """Choose thresholds on the sample tests and out-of-domain questions; print the rates.

    Two-fold cross-validation shows how well the choice generalises: thresholds chosen on one
    half of the tests (every other test of each entry) are scored on the other half. The
    returned thresholds are chosen on all of them.
    """
    kb, _ = load_knowledge(knowledge)
    matcher = Matcher(kb)
    tests = held_out_rows(kb, matcher)
    ood = ood_rows(matcher, ood_file)
    print(
        "| thresholds chosen on | answer / suggest / margin | scored on | answered | "
        "wrong among answered | suggested | suggest has it | none |"
    )
    print("|---|---|---|---|---|---|---|---|")
    folds = [tests[0::2], tests[1::2]]
    for k, (fit, check) in enumerate([(folds[0], folds[1]), (folds[1], folds[0])]):
        chosen = choose_thresholds(fit, ood)
        r = rates(check, *chosen)
        print(
            f"| tests half {k + 1} | {_fmt(chosen)} | other half | {r.answered:.3f} | "
            f"{r.wrong:.3f} | {r.suggested:.3f} | {r.suggest_hit:.3f} | {r.none:.3f} |"
        )
    answer, suggest, margin = choose_thresholds(tests, ood)
    chosen = (answer, suggest, margin)
    for name, rows in [
        (f"sample tests ({len(tests)})", tests),
        (f"out-of-domain ({len(ood)})", ood),
        *eval_rows.items(),
    ]:
        r = rates(rows, *chosen)
        print(
            f"| all tests | {_fmt(chosen)} | {name} | {r.answered:.3f} | {r.wrong:.3f} | "
            f"{r.suggested:.3f} | {r.suggest_hit:.3f} | {r.none:.3f} |"
        )
    print(
        f"chosen: answer_threshold={answer:.2f} suggest_threshold={suggest:.2f} "
        f"margin={margin:.2f}  (defaults in bot/faq/matcher.py: {DEFAULT_ANSWER_THRESHOLD:.2f} / "
        f"{DEFAULT_SUGGEST_THRESHOLD:.2f} / {DEFAULT_MARGIN:.2f})"
    )
    return chosen


def _fmt(chosen: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.2f}" for v in chosen)


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
    ap.add_argument(
        "--calibrate",
        action="store_true",
        help="choose the thresholds on the sample content and out-of-domain questions, "
        "print the outcome rates (eval sets: dev split only)",
    )
    ap.add_argument("--ood", type=Path, default=OOD_FILE, help="out-of-domain questions (YAML)")
    args = ap.parse_args(argv)
    synonyms: dict[str, Synonyms] = {}
    if not args.no_synonyms:
        synonyms = load_knowledge(args.knowledge)[0].synonyms
        if args.domain_synonyms:
            synonyms = with_domain_packs(args.knowledge, synonyms)
    if args.calibrate and args.split != "dev":
        ap.error("--calibrate looks at the eval sets' dev split only: add --split dev")
    reports = []
    eval_rows: dict[str, list[Row]] = {}
    for name, (folder, lang, _floor) in SETS.items():
        path = args.eval / folder
        kb = load_set(path, lang, synonyms)
        matcher = Matcher(kb)
        queries = load_queries(path, args.split)
        if args.calibrate:
            eval_rows[f"{name} dev ({len(queries)})"] = scored_rows(matcher, queries, lang)
        reports.append(evaluate(matcher, queries, lang, name))
    if args.calibrate:
        calibrate(args.knowledge, eval_rows, args.ood)
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

"""Triage accuracy and speed on the external evaluation sets (never copied into the repo).

Run from the repo root: ``python -m benchmarks.triage_bench [EVAL_DIR]`` (default
``../shared/eval``). Each set is split by position: even positions are *dev* (the only part
looked at while tuning), odd positions are *test* (reported). ``--show-dev-misses`` prints the
dev errors for tuning; there is deliberately no way to print test texts.

Positions: line index in the set's file (OpenAI moderation: the gzip'd JSONL, all 1,680 lines;
SOS-1K: data rows of fine-grained fold1..fold5 then test_data, in that order; Tianchi: the rows
of queries_dev then queries_test; COUGH: CSV data rows).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Allow `python benchmarks/triage_bench.py` as well as `python -m benchmarks.triage_bench`.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from bot.triage import Triage, TriageResult

REPO_ROOT = Path(__file__).resolve().parent.parent

# Floors from the brief: recall on must-escalate sets, false-positive rate on benign FAQ sets.
RECALL_FLOORS = {"sos1k_zh_level>=4": 0.90, "lexicon_phrases_label1": 0.90, "openai_SH_pos": 0.85}
BENIGN_FP_CEILING = 0.01


@dataclass(frozen=True)
class Item:
    """One evaluation text with its position in its set."""

    position: int
    text: str
    positive: bool


@dataclass(frozen=True)
class EvalSet:
    """A named set: positives are measured by recall, negatives by false-positive rate."""

    name: str
    kind: str  # "recall" or "fp"
    items: tuple[Item, ...]
    note: str = ""


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    for line in raw.decode("utf-8").splitlines():
        if line.strip():
            yield json.loads(line)


def load_sets(root: Path) -> list[EvalSet]:
    """Read every evaluation set under ``root`` into memory."""
    sets: list[EvalSet] = []

    openai = list(_jsonl(root / "selfharm_en_openai_moderation" / "samples-1680.jsonl.gz"))
    sets.append(
        EvalSet(
            "openai_SH_pos",
            "recall",
            tuple(
                Item(i, str(r["prompt"]), True) for i, r in enumerate(openai) if r.get("SH") == 1
            ),
        )
    )
    sets.append(
        EvalSet(
            "openai_SH_neg",
            "fp",
            tuple(
                Item(i, str(r["prompt"]), False) for i, r in enumerate(openai) if r.get("SH") == 0
            ),
            "hard negatives: violence, hate, sexual content",
        )
    )

    lexicon = list(
        _jsonl(root / "selfharm_en_suicide_risk_lexicon" / "short_sitb_phrases_and_negations.jsonl")
    )
    sets.append(
        EvalSet(
            "lexicon_phrases_label1",
            "recall",
            tuple(Item(i, str(r["text"]), True) for i, r in enumerate(lexicon) if r["label"] == 1),
        )
    )
    sets.append(
        EvalSet(
            "lexicon_phrases_label0",
            "fp",
            tuple(Item(i, str(r["text"]), False) for i, r in enumerate(lexicon) if r["label"] == 0),
            "negations and controls; some labels debatable",
        )
    )

    sos_rows: list[tuple[str, int]] = []
    fine = root / "selfharm_zh_sos1k_weibo" / "fine-grained"
    for name in ("fold1", "fold2", "fold3", "fold4", "fold5", "test_data"):
        lines = (fine / f"{name}.tsv").read_text(encoding="utf-8").splitlines()[1:]
        for line in lines:
            text, _, label = line.rpartition("\t")
            if text:
                sos_rows.append((text, int(label)))
    sets.append(
        EvalSet(
            "sos1k_zh_level>=4",
            "recall",
            tuple(Item(i, t, True) for i, (t, lv) in enumerate(sos_rows) if lv >= 4),
        )
    )
    sets.append(
        EvalSet(
            "sos1k_zh_level1-3",
            "fp",
            tuple(Item(i, t, False) for i, (t, lv) in enumerate(sos_rows) if 1 <= lv <= 3),
            "distress without a suicidal wish; for information",
        )
    )
    sets.append(
        EvalSet(
            "sos1k_zh_level0",
            "fp",
            tuple(Item(i, t, False) for i, (t, lv) in enumerate(sos_rows) if lv == 0),
            "for information",
        )
    )

    def queries(path: Path, key: str = "query") -> list[str]:
        return [str(r[key]) for r in _jsonl(path)]

    benign: dict[str, list[str]] = {
        "covidfaq_en_queries": queries(root / "faq_en_covidfaq_jhu" / "queries.jsonl"),
        "stackfaq_en_queries": queries(root / "faq_en_stackfaq" / "queries.jsonl"),
    }
    with (root / "faq_en_cough_queries_only" / "User_Query_Bank.csv").open(
        encoding="utf-8", newline=""
    ) as handle:
        benign["cough_en_queries"] = [row["query"] for row in csv.DictReader(handle)]
    tianchi = root / "faq_zh_tianchi_ncov_qq"
    benign["tianchi_zh_queries"] = queries(tianchi / "queries_dev.jsonl") + queries(
        tianchi / "queries_test.jsonl"
    )
    benign["tianchi_zh_faq_questions"] = queries(tianchi / "faqs.jsonl", "question")
    for name, texts in benign.items():
        items = tuple(Item(i, t, False) for i, t in enumerate(texts))
        sets.append(EvalSet(name, "benign", items, "benign FAQ queries"))
    return sets


def split(items: tuple[Item, ...], part: str) -> list[Item]:
    """Dev = even positions, test = odd positions."""
    parity = 0 if part == "dev" else 1
    return [item for item in items if item.position % 2 == parity]


@dataclass(frozen=True)
class Score:
    """Counts for one set and one split."""

    n: int
    escalated: int
    crisis: int
    emergency: int = 0

    def rate(self) -> float:
        return self.escalated / self.n if self.n else 0.0

    def crisis_rate(self) -> float:
        return self.crisis / self.n if self.n else 0.0


def score(triage: Triage, items: list[Item]) -> tuple[Score, list[tuple[Item, TriageResult]]]:
    """Classify items; return counts and every (item, result) pair."""
    results = [(item, triage.classify(item.text)) for item in items]
    escalated = sum(1 for _, r in results if r.level != "normal")
    crisis = sum(1 for _, r in results if r.level == "crisis")
    emergency = sum(1 for _, r in results if r.level == "emergency")
    return Score(len(items), escalated, crisis, emergency), results


# Our own long-message samples for the latency check (no evaluation text): a citizen's long
# question, the same with a crisis sentence inside, and a long distressed message.
_LONG_BENIGN = (
    "Hello, I renewed my ID card at the Example City office last week and the queue was short, "
    "but I still have questions about my residence permit, the parking fine near the station, "
    "and whether I can register a new address online or need to come in person with documents. "
)
_LONG_CRISIS = "I feel so alone and tired of everything, nobody would notice if I was gone. "


# Our own labelled evasions and emergencies (tests/triage/labelled.yaml, written for this
# project): per kind, how many of its urgent items reach their level, and how many of its
# look-alikes escalate.
OWN_KINDS = ("spaced", "emoji_combo", "pinyin", "no_spaces", "emergency")


def own_rows(triage: Triage) -> None:
    """Print a row per kind of our own labelled evasions and emergencies."""
    labelled = REPO_ROOT / "tests" / "triage" / "labelled.yaml"
    items = yaml.safe_load(labelled.read_text(encoding="utf-8"))["items"]
    print(f"own labelled set ({labelled.relative_to(REPO_ROOT)}), by kind:")
    for kind in OWN_KINDS:
        urgent = [i for i in items if i["kind"] == kind and i["level"] in ("crisis", "emergency")]
        alike = [i for i in items if i["kind"] == kind and i["level"] == "normal"]
        hit = sum(triage.classify(i["text"], i["lang"]).level == i["level"] for i in urgent)
        false = sum(triage.classify(i["text"], i["lang"]).level != "normal" for i in alike)
        print(
            f"  {kind:<12} recall {hit}/{len(urgent)}"
            f" = {hit / max(1, len(urgent)):.2f}; look-alikes escalated {false}/{len(alike)}"
        )


def emergency_rows(triage: Triage) -> None:
    """Print our held-out emergencies and look-alikes (tests/triage/emergency_heldout.yaml, the
    emergency model's dev set): how many reach emergency, and how many look-alikes escalate."""
    heldout = REPO_ROOT / "tests" / "triage" / "emergency_heldout.yaml"
    data = yaml.safe_load(heldout.read_text(encoding="utf-8"))
    print(f"own held-out emergencies ({heldout.relative_to(REPO_ROOT)}; dev for the model):")
    for lang, groups in data.items():
        urgent, alike = groups["emergency"], groups["look_alike"]
        hit = sum(triage.classify(t, lang).level == "emergency" for t in urgent)
        by_model = sum(triage.rules(t, lang).level != "emergency" for t in urgent)
        false = [triage.classify(t, lang).level for t in alike]
        escalated = sum(level != "normal" for level in false)
        print(
            f"  {lang:<3} emergency recall {hit}/{len(urgent)} = {hit / len(urgent):.2f}"
            f" ({by_model} not caught by the rules);"
            f" look-alikes escalated {escalated}/{len(alike)}"
            f" (emergency {false.count('emergency')})"
        )


def latency(triage: Triage, runs: int = 50) -> dict[str, tuple[float, float]]:
    """Median and p99 classify time in ms: a short ordinary message, 4,000-character ones."""
    labelled = yaml.safe_load((REPO_ROOT / "tests/triage/labelled.yaml").read_text("utf-8"))
    varied = " ".join(
        str(i["text"]) for i in labelled["items"] if i["level"] == "normal" and i["lang"] == "en"
    )
    samples = {
        "short ordinary": "I renewed my passport today and the queue was short.",
        "benign 4000 chars": (_LONG_BENIGN * 20)[:4000],
        "varied own benign 4000": (varied * 2)[:4000],
        "crisis inside 4000": (_LONG_BENIGN * 10)[:2000]
        + _LONG_CRISIS
        + (_LONG_BENIGN * 10)[:1900],
        "distress 4000 chars": (_LONG_CRISIS * 60)[:4000],
    }
    out: dict[str, tuple[float, float]] = {}
    for name, text in samples.items():
        triage.classify(text)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            triage.classify(text)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        # Nearest rank: with 50 runs the p99 is the slowest run (none is dropped).
        out[name] = (times[len(times) // 2], times[math.ceil(len(times) * 0.99) - 1])
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the accuracy table; exit 1 if a floor is missed on the test split."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval_dir", nargs="?", type=Path, default=REPO_ROOT / "../shared/eval")
    parser.add_argument("--knowledge", type=Path, default=REPO_ROOT / "knowledge/triage")
    parser.add_argument(
        "--show-dev-misses",
        metavar="SET",
        help="print dev-split errors of one set (substring of its name) for tuning",
    )
    parser.add_argument(
        "--dev-only",
        action="store_true",
        help="score the dev split only (use this while tuning, so test stays unseen)",
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    triage = Triage.load(args.knowledge)
    load_ms = (time.perf_counter() - started) * 1000
    sets = load_sets(args.eval_dir)

    if args.show_dev_misses:
        for eval_set in sets:
            if args.show_dev_misses not in eval_set.name:
                continue
            _, results = score(triage, split(eval_set.items, "dev"))
            for item, result in results:
                wrong = (
                    (result.level != "crisis")
                    if eval_set.kind == "recall"
                    else (result.level != "normal")
                )
                if wrong:
                    print(
                        f"[{eval_set.name} #{item.position}] {result.level} {result.signals} "
                        f"{item.text[:160]!r}"
                    )
        return 0

    header = (
        f"{'set':<26} {'kind':<7} {'n test':>6} {'test':>7} {'test crisis':>11} "
        f"{'n dev':>6} {'dev':>7} {'dev crisis':>10}  floor"
    )
    print(f"Triage benchmark ({args.eval_dir}); recall = level crisis for must-escalate sets")
    print("(test/dev: recall for 'recall' sets counts crisis only; FP counts any non-normal)")
    print(header)
    print("-" * len(header))
    failures: list[str] = []
    total = 0
    classify_started = time.perf_counter()
    benign_totals = {"test": [0, 0, 0, 0], "dev": [0, 0, 0, 0]}
    for eval_set in sets:
        test, _ = score(triage, [] if args.dev_only else split(eval_set.items, "test"))
        dev, _ = score(triage, split(eval_set.items, "dev"))
        total += test.n + dev.n
        if eval_set.kind == "recall":
            test_value, dev_value = test.crisis_rate(), dev.crisis_rate()
            extra_test, extra_dev = f"any {test.rate():.3f}", f"any {dev.rate():.3f}"
            floor = RECALL_FLOORS.get(eval_set.name)
            verdict = ""
            if floor is not None and test.n == 0:
                verdict = "n/a (no test items)"
            elif floor is not None:
                ok = test_value >= floor or args.dev_only
                verdict = f">= {floor:.2f} {'ok' if ok else 'MISSED'}"
                if not ok:
                    failures.append(eval_set.name)
        else:
            test_value, dev_value = test.rate(), dev.rate()
            extra_test, extra_dev = f"{test.crisis_rate():.4f}", f"{dev.crisis_rate():.4f}"
            verdict = eval_set.note
            if eval_set.kind == "benign":
                for part, sc in (("test", test), ("dev", dev)):
                    benign_totals[part][0] += sc.n
                    benign_totals[part][1] += sc.escalated
                    benign_totals[part][2] += sc.crisis
                    benign_totals[part][3] += sc.emergency
                ok = test_value <= BENIGN_FP_CEILING or args.dev_only
                verdict = f"<= {BENIGN_FP_CEILING:.2f} {'ok' if ok else 'MISSED'}"
                if not ok:
                    failures.append(eval_set.name)
        print(
            f"{eval_set.name:<26} {eval_set.kind:<7} {test.n:>6} {test_value:>7.4f} "
            f"{extra_test:>11} {dev.n:>6} {dev_value:>7.4f} {extra_dev:>10}  {verdict}"
        )
    elapsed = time.perf_counter() - classify_started
    own_rows(triage)
    emergency_rows(triage)
    for part in ("dev",) if args.dev_only else ("test", "dev"):
        n, esc, cri, eme = benign_totals[part]
        print(
            f"all benign FAQ queries ({part}): n={n} FP any={esc / n:.4f} ({esc}) "
            f"FP crisis={cri / n:.4f} ({cri}) FP emergency={eme / n:.4f} ({eme})"
        )
    print(
        f"load {load_ms:.0f} ms; {total} messages in {elapsed:.2f} s = "
        f"{total / elapsed:,.0f} msg/s ({elapsed / total * 1e6:.0f} us/msg)"
    )
    for name, (median, p99) in latency(triage).items():
        print(f"latency {name}: median {median:.2f} ms, p99 {p99:.2f} ms")
    if args.dev_only:
        print("dev split only: test not scored, floors not checked")
        return 0
    if failures:
        print("floors missed on test: " + ", ".join(failures))
        return 1
    print("all floors met on test")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The triage benchmark runs end to end on a small synthetic tree shaped like shared/eval."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from benchmarks import triage_bench


def _jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


@pytest.fixture
def eval_tree(tmp_path: Path) -> Path:
    # Synthetic texts written for this test; the real sets are never copied into the repo.
    root = tmp_path / "eval"
    _jsonl(
        root / "selfharm_en_openai_moderation" / "samples-1680.jsonl.gz",
        [
            {"prompt": "I want to kill myself", "SH": 1},
            {"prompt": "I want to end my life", "SH": 1},
            {"prompt": "the weather is nice", "SH": 0},
            {"prompt": "see you at the market", "SH": 0},
            {"prompt": "unlabelled"},
        ],
    )
    _jsonl(
        root / "selfharm_en_suicide_risk_lexicon" / "short_sitb_phrases_and_negations.jsonl",
        [
            {"text": "i wanna die", "label": 1},
            {"text": "i am suicidal", "label": 1},
            {"text": "lunch is ready", "label": 0},
            {"text": "good morning", "label": 0},
        ],
    )
    fine = root / "selfharm_zh_sos1k_weibo" / "fine-grained"
    fine.mkdir(parents=True)
    for name in ("fold1", "fold2", "fold3", "fold4", "fold5", "test_data"):
        (fine / f"{name}.tsv").write_text(
            "comment\tmyLabel\n我不想活了\t5\n我想自杀\t7\n今天天气很好\t0\n", encoding="utf-8"
        )
    for folder, rows in (
        ("faq_en_covidfaq_jhu", ["how do I wash my hands", "is the shop open"]),
        ("faq_en_stackfaq", ["how to make text bold", "how to delete an account"]),
    ):
        _jsonl(root / folder / "queries.jsonl", [{"query": q} for q in rows])
    cough = root / "faq_en_cough_queries_only" / "User_Query_Bank.csv"
    cough.parent.mkdir(parents=True)
    cough.write_text("index,query\n0,what is a mask\n1,when do schools open\n", encoding="utf-8")
    tianchi = root / "faq_zh_tianchi_ncov_qq"
    _jsonl(tianchi / "queries_dev.jsonl", [{"query": "发烧怎么办"}, {"query": "咳嗽吃什么药"}])
    _jsonl(tianchi / "queries_test.jsonl", [{"query": "嗓子疼"}, {"query": "头疼"}])
    _jsonl(tianchi / "faqs.jsonl", [{"question": "感冒要多久好"}, {"question": "肺炎怎么治"}])
    return root


def test_split_uses_even_positions_for_dev() -> None:
    items = tuple(triage_bench.Item(i, str(i), True) for i in range(5))
    assert [i.position for i in triage_bench.split(items, "dev")] == [0, 2, 4]
    assert [i.position for i in triage_bench.split(items, "test")] == [1, 3]


def test_benchmark_prints_table_and_passes_floors(
    eval_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert triage_bench.main([str(eval_tree)]) == 0
    out = capsys.readouterr().out
    assert "sos1k_zh_level>=4" in out and "tianchi_zh_queries" in out
    assert "zh  emergency recall" in out and "FP emergency=" in out
    assert "all floors met on test" in out


def test_dev_misses_never_show_test_texts(
    eval_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Position 1 in the moderation file is a test item; make it a miss and check it stays hidden.
    _jsonl(
        eval_tree / "selfharm_en_openai_moderation" / "samples-1680.jsonl.gz",
        [{"prompt": "hello there", "SH": 1}, {"prompt": "secret test miss", "SH": 1}],
    )
    assert triage_bench.main([str(eval_tree), "--show-dev-misses", "openai_SH_pos"]) == 0
    out = capsys.readouterr().out
    assert "hello there" in out
    assert "secret test miss" not in out

"""The cascade (``skip_below`` on the ranking models of knowledge/triage/examples/*.yaml): the
transformer reads a message only when the word vectors cannot rule it out."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from bot.triage import DEFAULT_DIRECTORY, Triage, TriageResult
from bot.triage.model import ExamplesModel, decide_all, rank_all
from tests.support.triage import counted, write_rules

NORMAL = TriageResult("normal", ())
# Citizens' questions, English and Chinese: every file's word vectors rule them out.
# (Not every citizen's question is: "where can I pay a traffic fine" still reaches e5.)
QUESTIONS = [
    "What time does the passport office open?",
    "How do I get a certificate of no criminal record?",
    "How do I renew my passport at the Example City office?",
    "Can I book an appointment online?",
    "护照办理需要什么材料",
    "身份证丢了怎么办",
]
# Only the contextual model catches these (the rules miss them): the cascade must let them in.
ONLY_THE_MODEL = [
    ("tonight I'm going to make the pain stop for good", "crisis"),
    ("there's a man who's stayed right behind me for the last five streets", "emergency"),
]
RISKY_SENTENCE = "tonight I'm going to make the pain stop for good."


def _opinions(models: list[ExamplesModel], texts: list[str]) -> list[str | None]:
    ranked = [shortlists for shortlists, _ in rank_all(models, texts)]
    return [level for level, _ in decide_all(models, list(zip(texts, ranked, strict=True)))]


def test_the_shipped_ranking_models_rule_messages_out() -> None:
    # Each examples file with a cheap model says where its bar is (chosen on dev data).
    triage = Triage.load(DEFAULT_DIRECTORY)
    bars = {m.key: m.skip_below for m in triage._models if not m.decides}
    assert set(bars) == {"en:crisis", "en:emergency", "zh:emergency"}
    assert all(bar is not None for bar in bars.values())


def test_clearly_benign_questions_never_reach_the_transformer(triage: Triage) -> None:
    models, counting = counted(triage._models)
    assert _opinions(models, QUESTIONS) == [None] * len(QUESTIONS)
    assert counting.calls == []
    for text in QUESTIONS:
        assert not triage.needs_models(text, triage.rank(text)[0]), text
        assert triage.classify(text).level == "normal"


def test_messages_only_the_model_catches_are_still_read(triage: Triage) -> None:
    models, counting = counted(triage._models)
    for text, _ in ONLY_THE_MODEL:
        assert triage.rules(text).level == "normal", text  # else this test proves nothing
        assert triage.needs_models(text, triage.rank(text)[0]), text
    assert _opinions(models, [text for text, _ in ONLY_THE_MODEL]) == [
        level for _, level in ONLY_THE_MODEL
    ]
    assert len(counting.calls) == 1


def test_one_risky_sentence_among_many_benign_ones_is_read(triage: Triage) -> None:
    benign = " ".join(QUESTIONS[:4] * 3)
    text = f"{benign} {RISKY_SENTENCE} {benign}"
    assert triage.rules(text).level == "normal"
    models, counting = counted(triage._models)
    assert _opinions(models, [benign]) == [None] and counting.calls == []
    assert _opinions(models, [text]) == ["crisis"]
    assert any(RISKY_SENTENCE in part for part in counting.calls[0])


def test_a_file_without_its_cheap_model_never_skips(triage: Triage) -> None:
    # The English crisis file loaded without its word vectors: nothing can rule a message out,
    # so e5 reads every English question (the emergency file still rules them out).
    alone = tuple(m for m in triage._models if m.decides or m.key != "en:crisis")
    models, counting = counted(alone)
    assert _opinions(models, QUESTIONS[:3]) == [None] * 3
    assert sorted(counting.calls[0]) == sorted(QUESTIONS[:3])
    assert Triage(triage._languages, alone).needs_models(QUESTIONS[0], {})
    # A ranking model without a bar rules nothing out either.
    no_bar = tuple(dataclasses.replace(m, skip_below=None) for m in triage._models)
    models, counting = counted(no_bar)
    assert _opinions(models, QUESTIONS) == [None] * len(QUESTIONS)
    assert sorted(counting.calls[0]) == sorted(QUESTIONS)


async def test_a_ruled_out_message_is_answered_without_queueing(triage: Triage) -> None:
    fresh = Triage(triage._languages, triage._models)
    results = await fresh.queue.second_opinions([(text, NORMAL) for text in QUESTIONS])
    assert results == [NORMAL] * len(QUESTIONS)
    assert fresh.queue.waiting == 0
    human = TriageResult("human", ("person",))
    assert await fresh.queue.second_opinion(QUESTIONS[0], human) == human


def test_only_a_ranking_model_may_rule_messages_out(tmp_path: Path) -> None:
    write_rules(tmp_path)
    (tmp_path / "examples").mkdir()
    spec = {
        "lang": "en",
        "models": [{"encoder": "wordllama", "min_score": 0.5, "skip_below": 0.3}],
        "crisis": [f"I can't go on living like this, day {n}" for n in range(20)],
        "not_crisis": [f"How do I renew my passport, question {n}" for n in range(20)],
    }
    path = tmp_path / "examples" / "en.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    with pytest.raises(ValueError, match="skip_below"):
        Triage.load(tmp_path, cache_dir=None)
    spec["models"] = [
        {"encoder": "wordllama", "min_score": 0.5, "decides": False, "skip_below": 0.3}
    ]
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    assert Triage.load(tmp_path, cache_dir=None).has_models

"""The emergency model (knowledge/triage/examples/emergency-*.yaml): danger now, in English and
Chinese, found by nearest examples when the rules miss the wording; never lowering the rules,
winning over crisis, and sharing the transformer's embeddings with the crisis model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from bot.triage import DEFAULT_DIRECTORY, Triage, TriageResult
from bot.triage.model import ExamplesModel, WordVectors, decide_all, rank_all
from tests.support.triage import counted, rules_only, write_rules

NORMAL = TriageResult("normal", ())
HELDOUT = yaml.safe_load(Path(__file__).with_name("emergency_heldout.yaml").read_text("utf-8"))

# The issue's three emergencies: the rules now catch them; the model must catch them too.
ISSUE_EXAMPLES = [
    ("my daughter was grabbed by a man and pushed into a car", "en"),
    ("a guy has been following me home for 10 minutes, he is still behind me", "en"),
    ("我女儿被一个陌生人抱走了", "zh"),
]
# Our own paraphrases of them that no rule catches (checked below): only the model can tell.
PARAPHRASES = [
    ("a man just snatched my girl off the pavement and shoved her into his van", "en"),
    ("my little girl got taken by some man, he put her in a car", "en"),
    ("this bloke has been walking behind me since the shop and he's still there", "en"),
    ("there's a man who's stayed right behind me for the last five streets", "en"),
    ("有个陌生男人把我女儿抱上车开走了", "zh"),
]
# The issue's look-alikes (past events, procedures, idioms; some of them are examples).
LOOK_ALIKES = [
    "my bike was stolen last week, how do I report it",
    "what should I do if someone follows me",
    "how to report a fire hazard",
    "this deadline is killing me",
    "my phone died",
    "我快被作业逼疯了",
    "human please",
]


def test_the_issues_emergencies_are_found_by_the_model_alone(triage: Triage) -> None:
    for text, lang in ISSUE_EXAMPLES:
        # The rules' level left out: what the models alone make of a normal message.
        result = triage.second_opinion(text, NORMAL)
        assert result.level == "emergency", text
        assert result.signals[0] == f"model_{lang}_e5_emergency", (text, result)


def test_paraphrases_the_rules_miss_are_emergencies_by_the_model(triage: Triage) -> None:
    rules = rules_only(triage)
    for text, lang in PARAPHRASES:
        assert rules.classify(text, lang).level == "normal", text  # else this proves nothing
        result = triage.classify(text, lang)
        assert result.level == "emergency", text
        assert result.signals[0] == f"model_{lang}_e5_emergency", (text, result)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_held_out_emergencies_are_found_and_look_alikes_are_not(triage: Triage, lang: str) -> None:
    # Written after the examples and kept out of them; the settings were chosen on them (dev),
    # where the shipped settings find 38 of 40 in each language and fire on 2 (en) and 1 (zh)
    # of 40 look-alikes.
    urgent, alike = HELDOUT[lang]["emergency"], HELDOUT[lang]["look_alike"]
    found = [t for t in urgent if triage.second_opinion(t, NORMAL).level == "emergency"]
    fired = [t for t in alike if triage.second_opinion(t, NORMAL).level == "emergency"]
    assert len(found) >= 0.9 * len(urgent), sorted(set(urgent) - set(found))
    assert len(fired) <= 0.1 * len(alike), fired


def test_the_issues_look_alikes_stay_as_the_rules_left_them(triage: Triage) -> None:
    for text in LOOK_ALIKES:
        assert triage.classify(text).level == triage.rules(text).level, text
        assert triage.second_opinion(text, NORMAL).level == "normal", text


def test_the_model_never_lowers_the_rules(triage: Triage) -> None:
    text, _ = PARAPHRASES[0]
    human = TriageResult("human", ("ask_for_person",))
    result = triage.second_opinion(text, human)
    assert result == TriageResult("emergency", ("ask_for_person", "model_en_e5_emergency"))
    # The rules said crisis: the models are not asked, and crisis stays crisis.
    crisis = triage.classify("I want to kill myself. " + text)
    assert crisis.level == "crisis" and not any(s.startswith("model_") for s in crisis.signals)


def test_examples_are_consistent_and_apart_from_the_tests() -> None:
    labelled = yaml.safe_load(Path(__file__).with_name("labelled.yaml").read_text("utf-8"))
    kept_out = {str(i["text"]).casefold() for i in labelled["items"]}
    for lang in ("en", "zh"):
        kept_out |= {t.casefold() for group in HELDOUT[lang].values() for t in group}
    # The issue's look-alikes are taught as examples; its emergencies are measured.
    kept_out |= {t.casefold() for t, _ in ISSUE_EXAMPLES + PARAPHRASES}
    for lang in ("en", "zh"):
        data = yaml.safe_load(
            (DEFAULT_DIRECTORY / "examples" / f"emergency-{lang}.yaml").read_text("utf-8")
        )
        assert data["level"] == "emergency"
        urgent = {t.casefold() for t in data["emergency"]}
        alike = {t.casefold() for t in data["not_emergency"]}
        assert len(urgent) == len(data["emergency"]) and len(alike) == len(data["not_emergency"])
        assert not urgent & alike
        assert not (urgent | alike) & kept_out, (urgent | alike) & kept_out


# Ordinary sentences (a bereavement's paperwork) that the crisis word vectors rank above the
# crisis sentence below, so the former top-6 shortlist would have left it out.
_GRIEF = [
    "My grandmother died last week and I need a copy of her death certificate.",
    "Her funeral is on Friday and the family is very sad.",
    "The funeral home asked for her papers and her last wishes.",
    "My grandfather died two years ago, so she was alone at the end.",
    "My aunt died in the same hospital last year and it took weeks.",
    "After the funeral we found her old diaries and letters.",
    "Do I need to return her ID card to the police station?",
    "Can I close her bank account at the Example Road branch?",
    "Also, where do I pay the parking fine I got near the hospital?",
]
ONLY_THE_MODEL_CRISIS = "There is no version of next year that has me in it."
ONLY_THE_MODEL_EMERGENCY = (
    "This bloke has been walking behind me since the shop and he's still there."
)


def _ranker(triage: Triage, key: str) -> ExamplesModel:
    (model,) = [m for m in triage._models if m.key == key and not m.decides]
    return model


def test_a_crisis_sentence_deep_in_a_long_message_is_read(triage: Triage) -> None:
    text = " ".join(_GRIEF) + " " + ONLY_THE_MODEL_CRISIS
    assert len(text) > 500 and triage.rules(text).level == "normal"
    # The former shortlist (the 6 most crisis-like by the word vectors) leaves it out ...
    ranker = _ranker(triage, "en:crisis")
    top_six = dataclasses.replace(ranker, cue_score=None).judge(text).ranked
    assert len(top_six) == 6 and ONLY_THE_MODEL_CRISIS not in [p.strip() for p in top_six]
    # ... the risk cue takes it to the transformer, which says crisis.
    assert ONLY_THE_MODEL_CRISIS in [p.strip() for p in ranker.judge(text).ranked]
    result = triage.classify(text)
    assert result.level == "crisis" and result.signals == ("model_en_e5",)


def test_an_emergency_sentence_deep_in_a_long_message_is_read(triage: Triage) -> None:
    text = " ".join(_GRIEF) + " " + ONLY_THE_MODEL_EMERGENCY
    assert len(text) > 500 and triage.rules(text).level == "normal"
    crisis_top_six = dataclasses.replace(_ranker(triage, "en:crisis"), cue_score=None)
    assert ONLY_THE_MODEL_EMERGENCY not in [p.strip() for p in crisis_top_six.judge(text).ranked]
    result = triage.classify(text)
    assert result.level == "emergency" and result.signals[0] == "model_en_e5_emergency"


def test_crisis_and_emergency_share_one_transformer_pass(triage: Triage) -> None:
    models, counting = counted(triage._models)
    texts = [
        "where do I renew my driving licence",
        PARAPHRASES[0][0],
        "tonight I'm going to make the pain stop for good",
        "我想问一下护照怎么办",
        "Everything is fine. " * 40 + "I won't be here to see the new year.",
    ]
    ranked = rank_all(models, texts)
    opinions = decide_all(models, [(t, r) for t, (r, _) in zip(texts, ranked, strict=True)])
    assert [level for level, _ in opinions] == [None, "emergency", "crisis", None, "crisis"]
    # One call for the whole batch, each distinct part once, though three files read them.
    assert len(counting.calls) == 1
    assert len(counting.calls[0]) == len(set(counting.calls[0]))
    together = Triage(triage._languages, models).decide_many(
        [(t, NORMAL, r) for t, (r, _) in zip(texts, ranked, strict=True)]
    )
    assert together == [triage.second_opinion(t, NORMAL) for t in texts]


def test_a_flood_is_capped_at_24_parts_for_the_transformer(triage: Triage) -> None:
    models, counting = counted(triage._models)
    flood = " ".join(f"A man is following me down street {n} right now." for n in range(60))
    ranked = rank_all(models, [flood])
    decide_all(models, [(flood, ranked[0][0])])
    assert len(counting.calls) == 1 and len(counting.calls[0]) == 24


def _two_levels(tmp_path: Path) -> Path:
    """A tiny content folder: a rule, a crisis file and an emergency file (word vectors)."""
    write_rules(tmp_path)
    both = [f"I can't go on, he is hitting me, night {n}" for n in range(12)]
    crisis = [f"I can't go on living like this, day {n}" for n in range(12)] + both
    emergency = [f"a man is breaking into my house, door {n}" for n in range(12)] + both
    benign = [f"How do I renew my passport, question {n}" for n in range(12)] + [
        f"where can I pay my parking fine, ticket {n}" for n in range(12)
    ]
    model = {"encoder": "wordllama", "min_score": 0.5}
    (tmp_path / "examples").mkdir()
    for name, level, examples in (("en", "crisis", crisis), ("em", "emergency", emergency)):
        spec = {
            "lang": "en",
            "level": level,
            "models": [model],
            level: examples,
            f"not_{level}": benign,
        }
        path = tmp_path / "examples" / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return tmp_path


def test_emergency_wins_when_both_models_fire(tmp_path: Path) -> None:
    triage = Triage.load(_two_levels(tmp_path), cache_dir=None)
    both = triage.classify("I can't go on, he is hitting me")
    assert both == TriageResult("emergency", ("model_en_wordllama_emergency", "model_en_wordllama"))
    assert triage.classify("I can't go on living like this").level == "crisis"
    assert triage.classify("a man is breaking into my house").signals == (
        "model_en_wordllama_emergency",
    )
    # Never lower: the rules' human request stays named, the level rises.
    result = triage.classify("a man is breaking into my house, I need a real person")
    assert result == TriageResult("emergency", ("person", "model_en_wordllama_emergency"))
    assert triage.classify("how do I renew my passport").level == "normal"


def test_an_examples_file_holds_the_lists_of_its_level_only(tmp_path: Path) -> None:
    directory = _two_levels(tmp_path)
    path = directory / "examples" / "em.yaml"
    spec = yaml.safe_load(path.read_text("utf-8"))
    spec["crisis"] = spec["emergency"]
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    with pytest.raises(ValueError, match="another level"):
        Triage.load(directory, cache_dir=None)
    del spec["crisis"], spec["emergency"]
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    with pytest.raises(ValueError, match="at least 20"):
        Triage.load(directory, cache_dir=None)
    assert WordVectors.shared().name == "wordllama"

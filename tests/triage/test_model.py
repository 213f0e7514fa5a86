"""The triage's second opinion (bot/triage/model.py): nearest examples in embedding space."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from bot.faq.service import FaqService
from bot.triage import DEFAULT_DIRECTORY, Triage
from bot.triage.model import (
    ContextEncoder,
    ExamplesModel,
    WordVectors,
    embed_cached,
    recording_embeddings,
    write_shipped,
)
from tests.support.triage import CountingEncoder, rules_only, write_rules

EXAMPLES = DEFAULT_DIRECTORY / "examples" / "en.yaml"

# Our own new wordings that the rules in en.yaml do not catch and the examples do not contain:
# a third party's goodbye, giving things away "for good", a height question with no stated
# intent but a clear shape. The shipped model must add crisis for each.
UNSEEN_CRISIS = [
    "my daughter texted that she loves us and is sorry, and now she won't answer",
    "my flatmate gave away all his things this week and said he's leaving for good",
    "my son sent a message saying sorry for everything and now his phone is off",
]
# Our own wordings that neither the rules nor the word vectors catch: only the contextual
# encoder (e5) reads "no next year with me in it" or a handover of papers as a plan.
CONTEXT_ONLY = [
    "there is no version of next year that has me in it",
    "told my sister where the insurance papers are, she does not need to know why",
]
CITIZEN_QUESTIONS = [
    "How do I renew my passport at the Example City office?",
    "The queue at the station is killing me",
    "my grandmother died last week, what do I do with her ID card?",
    "I'm so tired after work, can I book an appointment online?",
    "where do I pay a parking fine",
    # Insults aimed at the bot read like self-worth to the contextual encoder without
    # second-person look-alikes ("you are useless" escalated once margin_weight went to 3).
    "you're all useless",
]


def test_the_model_adds_crisis_for_wordings_the_rules_miss(triage: Triage) -> None:
    rules = rules_only(triage)
    for text in UNSEEN_CRISIS:
        assert rules.classify(text).level == "normal", text  # else this test proves nothing
        result = triage.classify(text)
        assert result.level == "crisis", text
        assert result.signals[-1].startswith("model_en_")


def test_the_contextual_model_finds_what_word_vectors_miss(triage: Triage) -> None:
    (words,) = [m for m in triage._models if m.encoder.name == "wordllama" and m.key == "en:crisis"]
    # The shipped word vectors only rank (decides: false); ask whether they would have fired.
    words = dataclasses.replace(words, decides=True)
    for text in CONTEXT_ONLY:
        assert triage.rules(text).level == "normal", text
        assert not words.judge(text).fired, text
        result = triage.classify(text)
        assert result.level == "crisis" and result.signals == ("model_en_e5",), text


def test_a_wish_to_live_with_a_practical_request_stays_normal(triage: Triage) -> None:
    # A negation is no crisis wording for either model when the rest is a practical request.
    assert triage.classify(
        "I don't want to die, I just want my landlord to fix the heating"
    ).level == ("normal")


def test_citizen_questions_and_idioms_stay_normal(triage: Triage) -> None:
    for text in CITIZEN_QUESTIONS:
        assert triage.classify(text).level == "normal", text


def test_examples_are_consistent_and_apart_from_the_labelled_set() -> None:
    data = yaml.safe_load(EXAMPLES.read_text("utf-8"))
    crisis = {t.casefold() for t in data["crisis"]}
    not_crisis = {t.casefold() for t in data["not_crisis"]}
    assert not crisis & not_crisis
    assert len(crisis) == len(data["crisis"]) and len(not_crisis) == len(data["not_crisis"])
    # The labelled set measures the whole triage; an example equal to one of its texts would
    # turn that measurement into a lookup.
    labelled = yaml.safe_load((Path(__file__).parent / "labelled.yaml").read_text("utf-8"))
    texts = {str(i["text"]).casefold() for i in labelled["items"]}
    assert not texts & (crisis | not_crisis)
    for text in UNSEEN_CRISIS + CONTEXT_ONLY + CITIZEN_QUESTIONS:
        assert text.casefold() not in crisis | not_crisis


def _mini(tmp_path: Path, **settings: object) -> Path:
    rules = """
        lang: xx
        signals:
          - name: fire
            level: emergency
            phrases: ["on fire"]
          - name: person
            level: human
            phrases: ["real person"]
    """
    write_rules(tmp_path, rules)
    crisis = [f"I can't go on living like this, night {n}" for n in range(12)] + [
        f"I want to end my life, day {n}" for n in range(12)
    ]
    benign = [f"How do I renew my passport, question {n}" for n in range(12)] + [
        f"where can I pay my parking fine, ticket {n}" for n in range(12)
    ]
    spec = {
        "lang": "en",
        "script": "latin",
        "models": [{"encoder": "wordllama", "min_score": 0.5}],
        "crisis": crisis,
        "not_crisis": benign,
        **settings,
    }
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "en.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    return tmp_path


def test_a_small_examples_file_decides_by_nearest_examples(tmp_path: Path) -> None:
    triage = Triage.load(_mini(tmp_path))
    assert triage.classify("i cant go on living like this anymore").level == "crisis"
    assert triage.classify("how do i renew my passport").level == "normal"
    # One word is left to the rules; so is text in another script.
    assert triage.classify("living").level == "normal"
    (model,) = ExamplesModel.load(tmp_path / "examples" / "en.yaml", cache_dir=None)
    assert model.applies("I want to end my life") and not model.applies("我真的不想活了 my life")
    assert not model.judge("我真的不想活了 my life").fired
    verdict = model.judge("I can't go on living like this")
    assert verdict.fired and verdict.nearest.startswith("I can't go on living like this")
    assert verdict.similarity > 0.7 and verdict.margin > 0.3


def test_the_model_never_lowers_or_replaces_what_the_rules_decided(tmp_path: Path) -> None:
    triage = Triage.load(_mini(tmp_path))
    # Human + a crisis wording: crisis wins, the rules' signal is kept.
    result = triage.classify("I want to end my life, I need a real person")
    assert result.level == "crisis" and result.signals == ("person", "model_en_wordllama")
    # Danger now stays an emergency ("call 110" first).
    assert triage.classify("I want to end my life, the house is on fire").level == "emergency"


def test_a_long_message_is_read_sentence_by_sentence(tmp_path: Path) -> None:
    triage = Triage.load(_mini(tmp_path, whole_words=20))
    filler = "My passport renewal form is attached and the office was helpful. " * 30
    assert triage.classify(filler).level == "normal"
    text = filler + "I can't go on living like this. " + filler
    assert triage.classify(text).level == "crisis"


def test_a_broken_examples_file_is_refused_with_its_folder(tmp_path: Path) -> None:
    directory = _mini(tmp_path)
    (directory / "examples" / "en.yaml").write_text("lang: en\ncrisis: [x]\n", "utf-8")
    with pytest.raises(ValueError, match="examples"):
        Triage.load(directory)


class _Counting:
    """The real word-vector encoder, counting how many texts it embedded."""

    def __init__(self) -> None:
        self.inner = WordVectors.shared()
        self.name, self.weights = self.inner.name, self.inner.weights
        self.embedded = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.embedded += len(texts)
        return self.inner.embed(texts)


def test_embedded_examples_are_cached_by_weights_and_texts(tmp_path: Path) -> None:
    encoder = _Counting()
    texts = ["I can't go on like this", "how do I renew my passport"]
    first = embed_cached(encoder, texts, tmp_path / "cache")
    again = embed_cached(encoder, texts, tmp_path / "cache")
    assert encoder.embedded == 2 and np.array_equal(first, again)
    assert len(list((tmp_path / "cache").glob("triage-wordllama-*.npz"))) == 1
    # Other texts are another entry, but only the new text is embedded (an edited FAQ
    # re-embeds what changed, not every phrasing); other weights embed everything again.
    more = embed_cached(encoder, ["where do I pay a fine", *texts], tmp_path / "cache")
    assert encoder.embedded == 2 + 1
    assert np.array_equal(more[1:], first)
    assert np.allclose(more[0], encoder.inner.embed(["where do I pay a fine"])[0])
    encoder.weights += "-next"
    embed_cached(encoder, texts, tmp_path / "cache")
    assert encoder.embedded == 2 + 1 + 2
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3
    # Another purpose keeps its own files.
    embed_cached(encoder, texts, tmp_path / "cache", purpose="faq")
    assert encoder.embedded == 2 + 1 + 2 + 2
    assert len(list((tmp_path / "cache").glob("faq-wordllama-*.npz"))) == 1


def test_a_broken_or_unwritable_cache_only_costs_time(tmp_path: Path) -> None:
    encoder = _Counting()
    texts = ["I can't go on like this", "how do I renew my passport"]
    embed_cached(encoder, texts, tmp_path)
    (entry,) = tmp_path.glob("*.npz")
    entry.write_bytes(b"not an array")
    assert np.array_equal(embed_cached(encoder, texts, tmp_path), encoder.inner.embed(texts))
    assert encoder.embedded == 4
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    vectors = embed_cached(encoder, texts, blocked / "cache")  # cannot create a folder there
    assert np.array_equal(vectors, encoder.inner.embed(texts))


def test_rules_only_load_skips_the_models(tmp_path: Path) -> None:
    directory = _mini(tmp_path)
    rules = Triage.load(directory, models=False, cache_dir=tmp_path / "cache")
    assert rules.classify("i cant go on living like this anymore").level == "normal"
    assert not (tmp_path / "cache").exists()  # nothing was embedded
    full = Triage.load(directory, cache_dir=tmp_path / "cache")
    assert full.classify("i cant go on living like this anymore").level == "crisis"
    assert list((tmp_path / "cache").glob("triage-wordllama-*.npz"))


def test_a_long_message_sends_only_the_shortlisted_sentences_to_a_capped_model(
    tmp_path: Path,
) -> None:
    directory = _mini(tmp_path, whole_words=20)
    spec = yaml.safe_load((directory / "examples" / "en.yaml").read_text("utf-8"))
    spec["models"] = [
        {"encoder": "wordllama", "min_score": 0.5},
        {"encoder": "wordllama", "min_score": 0.5, "max_parts": 1},
    ]
    (directory / "examples" / "en.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    cheap, capped = ExamplesModel.load(directory / "examples" / "en.yaml", cache_dir=None)
    crisis = "I can't go on living like this."
    text = "My passport renewal form is attached. " * 5 + crisis
    ranked = cheap.judge(text).ranked
    assert ranked[0].strip() == crisis and len(ranked) == 6  # most crisis-like first
    assert capped.judge(text, ranked).fired
    # Given another ranking, the capped model reads only its first sentence.
    assert not capped.judge(text, tuple(reversed(ranked))).fired
    assert not capped.judge(text).fired  # no ranking: the first part in reading order


def test_a_model_that_does_not_decide_only_ranks_for_the_next(tmp_path: Path) -> None:
    directory = _mini(tmp_path, whole_words=20)
    spec = yaml.safe_load((directory / "examples" / "en.yaml").read_text("utf-8"))
    spec["models"] = [{"encoder": "wordllama", "min_score": 0.5, "decides": False}]
    (directory / "examples" / "en.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    crisis = "I can't go on living like this."
    text = "My passport renewal form is attached. " * 5 + crisis
    (ranker,) = ExamplesModel.load(directory / "examples" / "en.yaml", cache_dir=None)
    verdict = ranker.judge(crisis)
    assert not verdict.fired and verdict.margin > 0.3  # close to crisis, yet it never fires
    assert ranker.judge(text).ranked[0].strip() == crisis
    assert Triage.load(directory, cache_dir=None).classify(crisis).level == "normal"
    # Followed by a deciding model capped at one sentence: the ranker's shortlist reaches it.
    spec["models"].append({"encoder": "wordllama", "min_score": 0.5, "max_parts": 1})
    (directory / "examples" / "en.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    result = Triage.load(directory, cache_dir=None).classify(text)
    assert result.level == "crisis" and result.signals == ("model_en_wordllama",)


def test_the_encoder_takes_the_lock_a_few_texts_at_a_time() -> None:
    # A reload embeds hundreds of FAQ phrasings; triage's second opinion for a citizen's
    # message must get the model between two small batches, not after all of them.
    encoder = ContextEncoder.shared()
    real = encoder._model
    held: list[int] = []

    class Recording:
        def query(self, texts: list[str]) -> np.ndarray:
            assert encoder._lock.locked()
            held.append(len(texts))
            return real.query(texts)

    texts = [
        f"question number {i} about a lost passport" for i in range(ContextEncoder.BATCH * 2 + 3)
    ]
    encoder._model = Recording()
    try:
        vectors = encoder.embed(texts)
    finally:
        encoder._model = real
    assert held == [ContextEncoder.BATCH, ContextEncoder.BATCH, 3]
    assert vectors.shape == (len(texts), 384)
    assert np.allclose(vectors[-1], encoder.embed(texts[-1:])[0])


def test_shipped_vectors_spare_a_first_start_all_but_changed_texts(tmp_path: Path) -> None:
    """`knowledge embed` records what a load embedded and writes it beside the content; a
    machine with an empty cache then embeds only what changed since."""
    encoder = CountingEncoder(ContextEncoder.shared())
    texts = ["I can't go on like this", "how do I renew my passport", "my dog is lost"]
    shipped = tmp_path / "content" / "embeddings"
    with recording_embeddings() as recorded:
        made = embed_cached(encoder, texts, tmp_path / "dev-cache", shipped=shipped)
    (path,) = write_shipped(recorded)
    assert path == shipped / "triage-e5.npz"
    # A new machine: nothing in its cache, one text edited in the content.
    edited = [*texts[:2], "my cat is lost"]
    encoder.calls.clear()
    fresh = embed_cached(encoder, edited, tmp_path / "new-cache", shipped=shipped)
    assert encoder.calls == [["my cat is lost"]]
    assert np.allclose(fresh[:2], made[:2], atol=1e-3)  # shipped as float16
    # What is shipped follows the content: the old text drops out at the next `embed`.
    with recording_embeddings() as recorded:
        embed_cached(encoder, edited, tmp_path / "new-cache", shipped=shipped)
    write_shipped(recorded)
    with np.load(path) as data:
        assert len(data["keys"]) == 3 and data["vectors"].dtype == np.float16


def test_the_shipped_vectors_cover_the_content() -> None:
    """Every text the FAQ and triage embed with e5 is shipped in knowledge/, so a fresh
    machine's first start embeds nothing (after editing content: `safewell knowledge embed`)."""
    knowledge = Path("knowledge")
    with recording_embeddings() as recorded:
        assert not [p for p in FaqService(knowledge).reload() if p.severity == "error"]
        Triage.load(knowledge / "triage")
    assert set(recorded) == {
        knowledge / "faq" / "embeddings" / "faq-e5.npz",
        knowledge / "triage" / "embeddings" / "triage-e5.npz",
    }
    for path, vectors in recorded.items():
        with np.load(path) as data:
            shipped = {bytes(k).decode() for k in data["keys"]}
        missing = set(vectors) - shipped
        assert not missing, f"{len(missing)} texts not in {path}: run `safewell knowledge embed`"

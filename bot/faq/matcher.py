"""The FAQ matcher: per-language indexes and the answer / suggest / none decision.

Thresholds (scores are 0..1, see ``bot.faq.index``):

* ``answer``: the best entry scores >= ``answer_threshold`` AND leads the runner-up by at least
  ``margin``. A tie or near-tie is a close call, never a guess.
* ``suggest``: otherwise, when the best entry scores >= ``suggest_threshold``; up to three
  entries at or above ``suggest_threshold`` are offered.
* ``none``: nothing scores ``suggest_threshold``.

How the defaults (0.50 / 0.25 / margin 0.08) were chosen: a grid over the sample content's
``tests:`` phrasings (384, en + zh) as positives and 900 out-of-domain questions (dev splits of
the health/web-app evaluation sets asked against the police sample content) as negatives, then
checked on the eval dev splits (``python -m benchmarks.faq_accuracy --split dev --calibrate``).
At these values no sample test is answered wrongly, ~20% are answered and ~60% more get the
right entry among the suggestions; ~2% of out-of-domain questions are answered (mostly "where
can I get tested" -> driving licence test) and ~6% get suggestions. On the eval dev splits
9% (CovidFAQ), 1% (StackFAQ) and 10% (Tianchi, where 12% of the gold entries have a textual
duplicate) of confident answers are wrong. Raise ``answer_threshold`` to trade answers for
suggestions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bot.faq.index import LANG_PARAMS, IndexParams, LangIndex, Synonyms
from bot.faq.models import KnowledgeBase
from bot.faq.normalize import detect_script
from bot.faq.telegram_html import visible_text

Outcome = Literal["answer", "suggest", "none"]

DEFAULT_ANSWER_THRESHOLD = 0.5
DEFAULT_SUGGEST_THRESHOLD = 0.25
DEFAULT_MARGIN = 0.08
MAX_RESULTS = 5
MAX_SUGGESTIONS = 3


@dataclass(frozen=True)
class Scored:
    """One entry with its 0..1 score."""

    entry_id: str
    score: float


@dataclass(frozen=True)
class MatchResult:
    """Outcome of matching one question; ``results`` are best first, at most five."""

    outcome: Outcome
    results: list[Scored] = field(default_factory=list)
    lang: str = ""
    suggest_threshold: float = DEFAULT_SUGGEST_THRESHOLD

    @property
    def best(self) -> Scored | None:
        """The top result, if any."""
        return self.results[0] if self.results else None

    @property
    def suggestions(self) -> list[Scored]:
        """Entries to offer as "Did you mean…" (up to three, above the suggest threshold)."""
        if self.outcome == "none":
            return []
        good = [s for s in self.results if s.score >= self.suggest_threshold]
        return good[:MAX_SUGGESTIONS]


class Matcher:
    """Matches citizen questions against a knowledge base (indexes are built at construction)."""

    def __init__(
        self,
        kb: KnowledgeBase,
        answer_threshold: float = DEFAULT_ANSWER_THRESHOLD,
        suggest_threshold: float = DEFAULT_SUGGEST_THRESHOLD,
        margin: float = DEFAULT_MARGIN,
        params: IndexParams | dict[str, IndexParams] | None = None,
    ) -> None:
        if not 0 <= suggest_threshold <= answer_threshold <= 1:
            raise ValueError("need 0 <= suggest_threshold <= answer_threshold <= 1")
        self.kb = kb
        self.answer_threshold = answer_threshold
        self.suggest_threshold = suggest_threshold
        self.margin = margin
        self.indexes: dict[str, LangIndex] = {}
        for lang in sorted(kb.languages):
            phrasings = [
                (eid, phrase) for eid, e in kb.entries.items() for phrase in e.phrasings(lang)
            ]
            answers = {
                eid: visible_text(e.content[lang].answer)
                for eid, e in kb.entries.items()
                if lang in e.content
            }
            if isinstance(params, IndexParams):
                lang_params = params
            else:
                lang_params = (params or LANG_PARAMS).get(lang) or IndexParams()
            self.indexes[lang] = LangIndex(
                phrasings, answers, kb.synonyms.get(lang, Synonyms()), lang_params
            )

    def pick_language(self, text: str, lang: str) -> str | None:
        """The index to search: ``lang`` unless the text's script clearly says otherwise."""
        script = detect_script(text)
        if script != lang and script in self.indexes:
            # A citizen whose Telegram is in English may still type Chinese, and vice versa.
            return script
        if lang in self.indexes:
            return lang
        base = lang.split("-")[0]
        if base in self.indexes:
            return base
        return next(iter(self.indexes), None)

    def match(self, text: str, lang: str) -> MatchResult:
        """Match ``text`` (the citizen's language ``lang``) and decide the outcome."""
        used = self.pick_language(text, lang)
        if used is None:
            return MatchResult("none", [], lang, self.suggest_threshold)
        rows = self.indexes[used].search(text, limit=MAX_RESULTS)
        results = [Scored(eid, round(score, 4)) for eid, score in rows]
        return MatchResult(self.decide(results), results, used, self.suggest_threshold)

    def decide(self, results: list[Scored]) -> Outcome:
        """Apply the thresholds and the tie margin to ranked results."""
        if not results or results[0].score < self.suggest_threshold:
            return "none"
        top = results[0].score
        runner_up = results[1].score if len(results) > 1 else 0.0
        if top >= self.answer_threshold and top - runner_up >= self.margin:
            return "answer"
        return "suggest"

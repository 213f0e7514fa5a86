"""Per-language inverted index over FAQ phrasings, precomputed once at load.

A query is scored in two stages so it never runs an expensive scorer over every phrasing:

1. *Candidates*: the query's terms (English stems, Chinese character uni-/bigrams) are looked
   up in an inverted index; each posting adds the term's IDF weight to its phrasing. This gives,
   per phrasing, an IDF-weighted overlap with the query, turned into a 0..1 similarity
   (weighted Dice of the two term sets). The entry's answer text is indexed the same way as a
   weaker second field. Misspelt English words that are not in the vocabulary are mapped to
   close vocabulary words (rapidfuzz over a length-bucketed vocabulary, cached).
2. *Re-ranking*: only the best ``rerank`` phrasings get a rapidfuzz string similarity on their
   content words, which rescues near-identical wording that term overlap underrates.

All three parts are 0..1 and the final score is their weighted sum, so scores are comparable
across queries and thresholds mean the same thing for every knowledge base.

3. *Meaning* (``w_semantic`` > 0, Chinese): the re-ranked candidates' scores are blended with a
   0..1 semantic score from ``bot.faq.semantic`` (a static model fitted at load to e5 vectors of
   the phrasings), scaled down for questions the content's wording barely covers.

Chinese extras (``LANG_PARAMS["zh"]``): numbers are compared by value with their measure word
(两个月 = 2个月) and a phrasing giving a different number for the same measure word loses
``number_conflict`` (3岁 vs 8岁 are different questions; bounds such as 16岁以下 never
conflict); and the shortest phrasings holding the rarest common term are always candidates, so
a phrasing that shares only common characters with the question is still scored.

What else was tried on the evaluation sets' dev halves and why this design won, with the
numbers: ``docs/decisions/0002-faq-matching.md``.
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

from bot.faq.normalize import (
    EN_STOPWORDS,
    content_string,
    han_numerals_to_digits,
    normalize,
    number_units,
    numbers_conflict,
    stem_en,
    terms,
)

if TYPE_CHECKING:
    from bot.faq.semantic import SemanticIndex


@dataclass(frozen=True)
class IndexParams:
    """Weights of the scoring parts (w_lex + w_fuzzy + w_answer = 1 keeps scores in 0..1).

    Defaults are the English calibration on the eval dev splits (``benchmarks/faq_accuracy``);
    ``LANG_PARAMS`` holds the per-language overrides.
    """

    w_lex: float = 0.85
    w_fuzzy: float = 0.05
    w_answer: float = 0.10
    # Balance of query coverage vs phrasing coverage in the weighted Dice (0.5 = symmetric):
    # citizens' questions are short, FAQ phrasings longer, so covering the query matters more.
    query_side: float = 0.85
    # Stop words stay indexed (question words tell "where can I" from "should I") but weigh less.
    stopword_weight: float = 0.7
    # Weight of a Han unigram relative to a bigram.
    unigram_weight: float = 1.0
    # Share of the IDF computed over whole entries (phrasings + answer) rather than phrasings.
    idf_answer_mix: float = 0.6
    rerank: int = 30
    # Posting lists longer than this share of the phrasings are not walked to find candidates;
    # such common terms (Han characters like 肺, "how") only add to candidates found otherwise.
    common_share: float = 0.03
    fuzzy_vocab_cutoff: float = 80.0
    fuzzy_scorer: str = "token_sort_ratio"
    # Similarity to the raw phrasing as typed (punctuation and all). Tiny: a tie-breaker.
    w_raw: float = 1e-4
    # Besides the rare terms' postings, also seed candidates from the shortest phrasings holding
    # this many of the rarest common terms. Without it a phrasing that shares only common terms
    # with the question ("孩子 支原体 肺炎 怎么 治疗") is never scored whenever the question
    # also has one rare word the phrasing lacks.
    seed_common: int = 0
    seed_size: int = 30
    # Subtracted when question and phrasing give different numbers for the same measure word
    # (3岁 vs 8岁, 13价 vs 23价, 110 vs 119): a different number is a different question. Off
    # for English, where numbers are mostly parts of names ("COVID-19" vs "day 1").
    number_conflict: float = 0.0
    # Share of the final score given to meaning (``bot.faq.semantic``): final = (1 - w) x the
    # lexical score above + w x the semantic score. 0 = lexical only, and e5 is not loaded.
    w_semantic: float = 0.0
    # e5 cosines of related texts crowd near the top (0.85-1.0), so the semantic score is the
    # cosine's distance above this floor, stretched to 0..1.
    semantic_floor: float = 0.9
    # Ridge penalty of the static model's regression (smaller: closer to the e5 vectors of
    # the phrasings it was fitted on, rougher for new wordings).
    semantic_ridge: float = 0.1
    # The semantic score is scaled down for a question whose static vector is shorter than
    # this (``SemanticIndex.embed``: few known terms, or terms never seen together), so an
    # unrelated question ("这周末会下雨吗") does not borrow a confident score from e5.
    semantic_trust: float = 1.0


LANG_PARAMS: dict[str, IndexParams] = {
    "zh": IndexParams(
        w_lex=0.8,
        w_fuzzy=0.1,
        w_answer=0.1,
        query_side=0.7,
        unigram_weight=1.0,
        number_conflict=0.3,
        seed_common=1,
        w_semantic=0.6,
    ),
}


_STOP_STEMS = frozenset(stem_en(w) for w in EN_STOPWORDS)
# Words that ask *something* without saying about what. A question made of these and stop words
# alone ("how long does it take?", "what should I do?") is too vague for a confident answer,
# however well it matches one phrasing word for word: it gets choices instead.
_VAGUE_TEXT = """
    how long much many what where when why who which whom whose can could should would will
    shall may might must get make do take cost time way go come need happen next now then ok
"""
_VAGUE_STEMS = _STOP_STEMS | frozenset(stem_en(w) for w in _VAGUE_TEXT.split())


@dataclass
class Synonyms:
    """Phrase -> canonical phrase replacements for one language, applied to docs and queries."""

    phrases: dict[str, str] = field(default_factory=dict)
    # Single English words are matched on their stems, so one entry covers every inflection
    # ("transmit" also maps "transmitted", "transmits").
    words: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_groups(cls, groups: Iterable[Sequence[str]]) -> Synonyms:
        """Build from groups of equivalent phrases; the first phrase of a group is canonical."""
        phrases: dict[str, str] = {}
        words: dict[str, str] = {}
        for group in groups:
            norm = [normalize(p) for p in group if normalize(p)]
            if len(norm) < 2:
                continue
            canon = norm[0]
            single = canon.isascii() and " " not in canon
            for p in norm[1:]:
                if p == canon:
                    continue
                if single and p.isascii() and " " not in p:
                    words.setdefault(stem_en(p), stem_en(canon))
                else:
                    phrases.setdefault(p, canon)
        return cls(phrases, words)

    def map_terms(self, found: list[str]) -> list[str]:
        """Map single-word synonyms (by stem) to their canonical stem."""
        if not self.words:
            return found
        return [self.words.get(t, t) for t in found]

    def __post_init__(self) -> None:
        # Canonical forms match too (as themselves), so a longer canonical phrase is not cut
        # up by a shorter source inside it ("id card" must not become "id card card").
        self._table = {c: c for c in self.phrases.values() if c not in self.phrases}
        self._table.update(self.phrases)
        alternatives = []
        for src in sorted(self._table, key=len, reverse=True):
            escaped = re.escape(src)
            alternatives.append(f"(?<![a-z0-9]){escaped}(?![a-z0-9])" if src.isascii() else escaped)
        self._pattern = re.compile("|".join(alternatives)) if alternatives else None

    def apply(self, text: str) -> str:
        """Replace synonyms in normalised text in one pass, longest phrase first, whole words
        for Latin. Replaced text is never scanned again, so one group's canonical form cannot
        be rewritten by another group (怎么处理 -> 怎么办 must not go on to 怎么办理)."""
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: self._table[m.group(0)], text)


class LangIndex:
    """Inverted index of one language's phrasings and answers."""

    def __init__(
        self,
        phrasings: Sequence[tuple[str, str]],
        answers: Mapping[str, str],
        synonyms: Synonyms | None = None,
        params: IndexParams | None = None,
        semantic: SemanticIndex | None = None,
    ) -> None:
        self.params = p = params or IndexParams()
        # The static model of meaning over ``phrasings``, in their order (None: lexical only).
        self.semantic = semantic
        self.synonyms = synonyms or Synonyms()
        self.entry_of: list[str] = []
        self.content: list[str] = []
        self.raw: list[str] = []
        # Numbers with their measure words, per phrasing (only kept when compared).
        self.numbers: list[frozenset[tuple[str, str]]] = []
        docs: list[set[str]] = []
        for entry_id, text in phrasings:
            norm = self.prepare(text)
            docs.append(set(self._terms(norm)))
            self.numbers.append(self._numbers(norm) if p.number_conflict else frozenset())
            self.entry_of.append(entry_id)
            self.content.append(content_string(norm))
            self.raw.append(text)
        # Answer field: entry-level sets of terms, with their own IDF.
        self.answer_entries: list[str] = []
        adocs: list[set[str]] = []
        for entry_id, text in answers.items():
            self.answer_entries.append(entry_id)
            adocs.append(set(self._terms(self.prepare(text))))
        self.answer_idf = self._idf(adocs)
        self.answer_terms: dict[str, set[str]] = dict(zip(self.answer_entries, adocs, strict=True))
        self.idf = self._idf(docs)
        if p.idf_answer_mix > 0 and adocs:
            # A topic word that fills the answers ("coronavirus" in a COVID FAQ) is not
            # informative even when few questions spell it out: blend in the IDF over whole
            # entries (phrasings + answer).
            whole: dict[str, set[str]] = {}
            for eid, doc in zip(self.entry_of, docs, strict=True):
                whole.setdefault(eid, set()).update(doc)
            for eid, adoc in zip(self.answer_entries, adocs, strict=True):
                whole.setdefault(eid, set()).update(adoc)
            entry_idf = self._idf(list(whole.values()))
            m = p.idf_answer_mix
            for t, v in self.idf.items():
                self.idf[t] = (1 - m) * v + m * entry_idf.get(t, v)
        self.max_idf = math.log(1 + (len(docs) + 0.5) / 0.5)
        self.postings: dict[str, list[int]] = {}
        self.doc_weight: list[float] = []
        self.doc_terms = docs
        self.common_df = max(50, int(p.common_share * len(docs)))
        for i, doc in enumerate(docs):
            for t in doc:
                self.postings.setdefault(t, []).append(i)
            self.doc_weight.append(sum(self._w(t) for t in doc))
        # Shortest phrasings first: with equal overlap they score highest, so a truncated walk
        # of a common term's list (see ``search``) keeps the likely winners.
        for plist in self.postings.values():
            plist.sort(key=self.doc_weight.__getitem__)
        # Vocabulary of Latin terms bucketed by length for cheap fuzzy look-ups of typos.
        self.vocab_by_len: dict[int, list[str]] = {}
        for t in self.postings:
            if t.isalpha() and t.isascii() and len(t) >= 4:
                self.vocab_by_len.setdefault(len(t), []).append(t)
        self._fuzzy_cache: dict[str, list[tuple[str, float]]] = {}

    def __len__(self) -> int:
        return len(self.entry_of)

    def prepare(self, text: str) -> str:
        """Normalised text with synonyms replaced."""
        return self.synonyms.apply(normalize(text))

    @staticmethod
    def _numbers(norm: str) -> frozenset[tuple[str, str]]:
        # Compared by value (两个月 = 2个月), but not turned into terms: "满十六岁" would then
        # match "未满16周岁" on its number, and on the eval dev sets that gained nothing.
        return number_units(han_numerals_to_digits(norm))

    def _terms(self, norm: str) -> list[str]:
        return self.synonyms.map_terms(terms(norm))

    def is_vague(self, text: str) -> bool:
        """Whether the question names nothing it is about (Latin-script words only: every
        word a stop word or a bare question word)."""
        found = terms(normalize(text))
        return bool(found) and all(t.isascii() and t in _VAGUE_STEMS for t in found)

    @staticmethod
    def _idf(docs: Sequence[set[str]]) -> dict[str, float]:
        df: dict[str, int] = {}
        for doc in docs:
            for t in doc:
                df[t] = df.get(t, 0) + 1
        n = len(docs)
        return {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}

    def _kind_factor(self, term: str) -> float:
        if len(term) == 1 and not term.isascii():
            return self.params.unigram_weight
        if term in _STOP_STEMS:
            return self.params.stopword_weight
        return 1.0

    def _w(self, term: str) -> float:
        return self.idf.get(term, self.max_idf) * self._kind_factor(term)

    def _fuzzy_terms(self, term: str) -> list[tuple[str, float]]:
        """Vocabulary terms close to an unknown Latin term, with a 0..1 similarity."""
        hit = self._fuzzy_cache.get(term)
        if hit is not None:
            return hit
        found: list[tuple[str, float]] = []
        if term.isascii() and term.isalpha() and len(term) >= 4:
            cands: list[str] = []
            for n in (len(term) - 1, len(term), len(term) + 1):
                cands.extend(self.vocab_by_len.get(n, ()))
            for cand, score, _ in process.extract(
                term,
                cands,
                scorer=Levenshtein.normalized_similarity,
                processor=None,
                limit=2,
                score_cutoff=self.params.fuzzy_vocab_cutoff / 100,
            ):
                found.append((cand, float(score)))
        if len(self._fuzzy_cache) > 50_000:
            self._fuzzy_cache.clear()
        self._fuzzy_cache[term] = found
        return found

    def query_terms(self, plain: str) -> tuple[str, dict[str, float], list[str], set[str]]:
        """A query already ``normalize``d (``plain``) with synonyms applied: text, term ->
        match factor (fuzzy < 1), unknown and extra terms."""
        norm = self.synonyms.apply(plain)
        qterms: dict[str, float] = {}
        unknown: list[str] = []
        extra: set[str] = set()
        raw = list(dict.fromkeys(self._terms(norm)))
        for t in raw:
            if t in self.idf or t in self.answer_idf:
                qterms[t] = 1.0
                continue
            near = self._fuzzy_terms(t)
            for cand, sim in near:
                qterms[cand] = max(qterms.get(cand, 0.0), sim)
            if not near:
                unknown.append(t)
        # "git hub" vs "github": adjacent Latin words whose concatenation is a known term.
        latin = [w for w in raw if w.isascii()]
        for a, b in itertools.pairwise(latin):
            joined = stem_en(a + b)
            if joined in self.idf and joined not in qterms:
                # The joined word means the pair, so it may not weigh more than the pair, and it
                # is an extra way to match, not an extra part of the question to cover.
                pair = self._w(a) * qterms.get(a, 0.0) + self._w(b) * qterms.get(b, 0.0)
                qterms[joined] = min(1.0, pair / self._w(joined)) if pair > 0 else 1.0
                extra.add(joined)
        return norm, qterms, unknown, extra

    def search(self, text: str, limit: int = 5) -> list[tuple[str, float]]:
        """Return up to ``limit`` (entry_id, score 0..1), best first, one row per entry."""
        p = self.params
        # Normalised once: the lexical terms add synonyms, the semantic ones do not.
        plain = normalize(text)
        norm, qterms, unknown, extra = self.query_terms(plain)
        if not qterms and not unknown:
            return []
        unknown_w = sum(self.max_idf * self._kind_factor(t) for t in unknown)
        # Phrasing field: IDF-weighted overlap per phrasing.
        q_weight = unknown_w
        overlap: dict[int, float] = {}
        common: list[tuple[str, float]] = []
        # Walk rare terms' postings first (cheap, and they make the candidates); common terms
        # are then only checked against those candidates, which keeps the cost per query flat
        # as the knowledge base grows.
        seeded = 0
        for t, factor in sorted(qterms.items(), key=lambda kv: len(self.postings.get(kv[0], ()))):
            w = self._w(t) * factor
            if t not in extra:
                q_weight += w
            plist: Sequence[int] = self.postings.get(t, [])
            if len(plist) > self.common_df:
                common.append((t, w))
                if not overlap or seeded < p.seed_common:
                    # Seed candidates from the shortest phrasings holding the rarest common
                    # term(s); a truncated walk keeps the work per query bounded. Their weight
                    # is added with the other common terms below.
                    seeded += 1
                    for i in plist[: self.common_df if not overlap else p.seed_size]:
                        overlap.setdefault(i, 0.0)
                continue
            for i in plist:
                overlap[i] = overlap.get(i, 0.0) + w
        for t, w in common:
            for i in overlap:
                if t in self.doc_terms[i]:
                    overlap[i] += w
        q_weight = max(q_weight, 1e-9)
        # Answer field: share of the query found in each entry's answer.
        # Only entries already found through their phrasings are scored here (set look-ups),
        # so long answers never make a query walk long posting lists.
        a_total = unknown_w
        a_terms: dict[str, float] = {}
        for t, factor in qterms.items():
            aw = self.answer_idf.get(t, self.max_idf) * self._kind_factor(t) * factor
            if t not in extra:
                a_total += aw
            if t in self.answer_idf:
                a_terms[t] = aw
        a_keys = a_terms.keys()
        a_total = max(a_total, 1e-9)
        a_share: dict[str, float] = {}
        qs = p.query_side
        qnumbers = self._numbers(norm) if p.number_conflict else frozenset()
        pre: dict[int, float] = {}
        conflicts: set[int] = set()
        for i, ov in overlap.items():
            lex = min(ov / (qs * q_weight + (1 - qs) * self.doc_weight[i]), 1.0)
            pre[i] = p.w_lex * lex
            if qnumbers and numbers_conflict(qnumbers, self.numbers[i]):
                pre[i] -= p.number_conflict
                conflicts.add(i)
        # The answer share adds at most ``w_answer``: a phrasing that cannot reach the
        # ``rerank``-th best score even with a full share is not worth the set intersection.
        floor = -math.inf
        if len(pre) > p.rerank:
            floor = heapq.nlargest(p.rerank, pre.values())[-1] - p.w_answer
        for i, base in pre.items():
            if base < floor:
                continue
            eid = self.entry_of[i]
            share = a_share.get(eid)
            if share is None:
                aset = self.answer_terms.get(eid)
                # Set intersection runs in C; the Python loop only sees the shared terms.
                share = sum(a_terms[t] for t in a_keys & aset) / a_total if aset else 0.0
                a_share[eid] = share
            pre[i] = base + p.w_answer * share
        top = heapq.nlargest(p.rerank, pre.items(), key=lambda kv: kv[1])
        qcontent = content_string(norm) if top else ""
        scorer = getattr(fuzz, p.fuzzy_scorer)
        scores: dict[int, float] = {}
        for i, s in top:
            fz = scorer(qcontent, self.content[i]) / 100 if qcontent else 0.0
            # Tie-break only (weight 1e-4): among phrasings that normalise to the same text,
            # prefer the one closest to how the citizen actually typed the question.
            scores[i] = s + p.w_fuzzy * fz + p.w_raw * fuzz.ratio(text, self.raw[i]) / 100
        if self.semantic is not None and p.w_semantic > 0:
            self._add_meaning(plain, scores, conflicts)
        best_by_entry: dict[str, float] = {}
        for i, score in scores.items():
            eid = self.entry_of[i]
            if score > best_by_entry.get(eid, -1.0):
                best_by_entry[eid] = score
        ranked = heapq.nlargest(limit, best_by_entry.items(), key=lambda kv: kv[1])
        return [(eid, min(max(score, 0.0), 1.0)) for eid, score in ranked]

    def _add_meaning(self, plain: str, scores: dict[int, float], conflicts: set[int]) -> None:
        """Blend the semantic score of the normalised question ``plain`` into the lexical
        candidates' ``scores``.

        A number conflict keeps its whole penalty: 119 is not 110 however alike the
        questions read (e5 puts them close).

        Only the lexical candidates: on the Tianchi dev split, also scoring the 10-60
        phrasings closest in meaning (with lexical score 0) never changed a result, and
        scanning every phrasing's vector cost ~0.2-0.6 ms a question at 10,000 phrasings."""
        assert self.semantic is not None
        p = self.params
        found = self.semantic.query(plain)
        if found is None:
            return
        unit, length = found
        trust = min(length / p.semantic_trust, 1.0) if p.semantic_trust > 0 else 1.0
        rows = np.fromiter(scores, dtype=np.int64, count=len(scores))
        lexical = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
        cosines = self.semantic.cosines(unit, rows)
        meaning = trust * np.clip((cosines - p.semantic_floor) / (1.0 - p.semantic_floor), 0, 1)
        blended = (1 - p.w_semantic) * lexical + p.w_semantic * meaning
        if conflicts:
            blended -= p.w_semantic * p.number_conflict * np.isin(rows, list(conflicts))
        scores.update(zip(rows.tolist(), blended.tolist(), strict=True))

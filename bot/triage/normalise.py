"""How triage reads a text before its rules match: the per-language normaliser (invisible
characters, spacing around Chinese, leetspeak inside tokens, repeated letters, letters written
apart, misspelt key words), applied alike to messages and to the content's phrases."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

from rapidfuzz.distance import OSA
from rapidfuzz.process import extractOne

# Characters that are never meaningful for matching: variation selectors and zero-width
# joiners/spaces that emoji keyboards and copy-paste insert.
_INVISIBLE = dict.fromkeys(map(ord, "\ufe0e\ufe0f\u200b\u200c\u200d\u2060\ufeff"), None)
_APOSTROPHES = dict.fromkeys(map(ord, "'’‘`´ʼ"), None)
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_SPACE_NEAR_CJK = re.compile(rf"(?<=[{_CJK}])\s+|\s+(?=[{_CJK}])")
_SPACES = re.compile(r"\s+")
_REPEATS = re.compile(r"(.)\1+", re.DOTALL)
# Three or more single letters written apart to dodge a filter, joined back into a word: spaced
# one space apart ("k i l l  m y s e l f": a wider gap separates the words), or dotted,
# hyphenated or underscored apart with one mark ("k.m.s", "s-u-i-c-i-d-e", "k_i_l_l").
_SPACED_LETTERS = re.compile(r"(?<![a-z0-9])[a-z](?:\s[a-z](?![a-z0-9])){2,}")
_DOTTED_LETTERS = re.compile(
    r"(?<![a-z0-9])[a-z](?P<mark>[._\-*~/])[a-z](?:(?P=mark)[a-z])+(?![a-z0-9])"
)
_LETTER_GAPS = re.compile(r"[\s._\-*~/]")
# Pinyin tone numbers ("wo3 xiang3 si3"), written after a syllable.
_TONE_NUMBERS = re.compile(r"(?<=[a-z])[1-5](?![0-9])")
_LATIN_WORD = re.compile(r"[a-z]+")
_CORRECTIONS_KEPT = 20_000


def _joined(match: re.Match[str]) -> str:
    return _LETTER_GAPS.sub("", match.group(0))


@dataclass(frozen=True)
class Normaliser:
    script: str
    leet: Mapping[int, str]
    leet_chars: frozenset[str]
    char_map: Mapping[int, str]
    fuzzy_words: tuple[str, ...]
    fuzzy_min_length: int
    fuzzy_two_edits_from: int
    fuzzy_protect: frozenset[str]
    pinyin: bool = False
    _leet_token: re.Pattern[str] = field(init=False, repr=False, compare=False)

    _corrections: dict[str, str] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        chars = "".join(sorted(self.leet_chars))
        # Only tokens that contain a leet character reach the (Python-level) callback.
        inner = f"[a-z{re.escape(chars)}]*"
        token = rf"{inner}[{re.escape(chars)}]{inner}" if chars else r"[a-z]+"
        object.__setattr__(self, "_leet_token", re.compile(token))

    def base(self, text: str) -> str:
        """Normalise without fuzzy correction (used for patterns and as the first step)."""
        text = unicodedata.normalize("NFKC", text).casefold()
        text = text.translate(_INVISIBLE).translate(_APOSTROPHES)
        if self.pinyin:
            # Tone marks and tone numbers carry no danger signal: "wǒ xiǎng sǐ" is "wo xiang si".
            text = "".join(
                c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
            )
            text = _TONE_NUMBERS.sub("", text.replace("ü", "v"))
        if self.char_map:
            text = text.translate(self.char_map)
        text = _DOTTED_LETTERS.sub(_joined, text)
        text = _SPACED_LETTERS.sub(_joined, text)
        if self.leet:
            text = self._leet_token.sub(self._unleet, text)
        text = _REPEATS.sub(r"\1", text)
        text = _SPACES.sub(" ", text).strip()
        if self.script == "cjk":
            text = _SPACE_NEAR_CJK.sub("", text)
        return text

    def _unleet(self, match: re.Match[str]) -> str:
        token = match.group(0)
        # Only tokens that mix letters with leet characters: "k1ll" yes, "110" and "$5" no.
        if any(c.isalpha() for c in token) and any(c in self.leet_chars for c in token):
            return token.translate(self.leet)
        return token

    def full(self, text: str) -> str:
        """Normalise a citizen's message, correcting misspelt key words."""
        text = self.base(text)
        if self.fuzzy_words:
            text = _LATIN_WORD.sub(self._correct, text)
        return text

    def _correct(self, match: re.Match[str]) -> str:
        token = match.group(0)
        if len(token) < self.fuzzy_min_length or token in self.fuzzy_protect:
            return token
        # Long messages repeat words; remembering corrections keeps normalising linear-cheap.
        known = self._corrections.get(token)
        if known is not None:
            return known
        limit = 2 if len(token) >= self.fuzzy_two_edits_from else 1
        best = extractOne(token, self.fuzzy_words, scorer=OSA.distance, score_cutoff=limit)
        corrected = best[0] if best is not None else token
        if len(self._corrections) >= _CORRECTIONS_KEPT:
            self._corrections.clear()
        self._corrections[token] = corrected
        return corrected

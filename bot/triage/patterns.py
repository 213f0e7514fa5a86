"""The content's phrases and patterns as regexes that search quickly: phrase syntax (``*``
gaps, ``{a|b}`` options, word boundaries), one regex per group of phrases branching on its
first character, and the anchor words that let a long message skip a regex (the gates)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bot.triage.normalise import Normaliser

#: Which words a regex needs, as alternatives (one per phrase) of conjunctions (every set
#: must share a key with the message); None means "always search".
Gate = tuple[tuple[frozenset[str], ...], ...] | None


@dataclass(frozen=True)
class Gated:
    """A regex and the anchor keys its matches need (see ``Gate``)."""

    regex: re.Pattern[str]
    anchors: Gate

    def open(self, keys: frozenset[str] | None) -> bool:
        """Whether the regex may match a message offering ``keys`` (None: short message)."""
        if keys is None or self.anchors is None:
            return True
        return any(all(not need.isdisjoint(keys) for need in both) for both in self.anchors)

    def search(self, text: str, keys: frozenset[str] | None) -> bool:
        return self.open(keys) and self.regex.search(text) is not None


_BRACES = re.compile(r"\{([^{}]*)\}")
# Separator between phrase words: any non-word run, none included, but never across a blanked
# exception (so an idiom cannot lend its words to a signal).
_SEP = r"[^\w¦]*"
# Words are separated by spaces; "*" (a gap) is its own element even when glued ("离开*世界").
_LITERAL_SPLIT = re.compile(r"\s+|(\*)")
_LATIN_GAP = r"(?:[a-z0-9]++[^\w¦]*+){0,3}?"
_CJK_GAP = r"[^。！？!?.\n¦]{0,6}?"


def _split_phrase(phrase: str) -> list[list[str]]:
    """Split a phrase into elements; each element is its list of alternatives."""
    elements: list[list[str]] = []
    position = 0
    for match in _BRACES.finditer(phrase):
        literal = phrase[position : match.start()]
        elements += [[word] for word in _LITERAL_SPLIT.split(literal) if word]
        elements.append(match.group(1).split("|"))
        position = match.end()
    elements += [[word] for word in _LITERAL_SPLIT.split(phrase[position:]) if word]
    if any("{" in o or "}" in o for options in elements for o in options):
        raise ValueError(f"nested or unbalanced braces in phrase {phrase!r}")
    return elements


def _option_regex(option: str, normaliser: Normaliser, leading: bool) -> str:
    norm = normaliser.base(option)
    if normaliser.script == "cjk":
        body = re.escape(norm.replace(" ", ""))
        # Latin letters inside a CJK phrase ("sb", "ai") still need word boundaries, or they
        # would match inside English words ("husband").
        head = r"(?<![a-z0-9])" if norm[:1].isascii() and norm[:1].isalnum() else ""
        tail = r"(?![a-z0-9])" if norm[-1:].isascii() and norm[-1:].isalnum() else ""
        return head + body + tail
    words = norm.split()
    return _SEP.join(_latin_word(w, shared=not (leading and i == 0)) for i, w in enumerate(words))


def _latin_word(word: str, shared: bool) -> str:
    # Squeezing glued text merges a letter shared by two words ("wanttodie" -> "wantodie"), so
    # a word's first letter may also be the previous word's last one (checked by lookbehind).
    # Not for a phrase's first word: it keeps a plain first letter so searches fail fast.
    if not shared or not word[0].isalnum():
        return re.escape(word)
    first = re.escape(word[0])
    return f"(?:{first}|(?<={first}))" + re.escape(word[1:])


@dataclass(frozen=True)
class _PhraseRegex:
    body: str
    bounded: bool  # starts on a word boundary
    first: frozenset[str]  # every character a match can start with; empty if unknown
    #: sets of keys, each of which must share a key with any text the phrase matches
    anchors: tuple[frozenset[str], ...] | None = None
    #: first character -> the rest of the phrase after it, when the phrase starts with a
    #: required element; lets a group branch on the first character like a trie.
    heads: tuple[tuple[str, str], ...] = ()


def _phrase_regex(phrase: str, normaliser: Normaliser) -> _PhraseRegex:
    """Turn a phrase into a regex tolerant of missing spaces and punctuation.

    ``{a|b|}`` is a group of alternatives (an empty one makes it optional); ``*`` is a gap of up
    to three words (Latin) or six characters in one sentence (CJK).
    """
    pieces: list[str] = []
    elements = _split_phrase(phrase)
    leading = True  # still within the optional elements a match may start with
    first: set[str] = set()
    for options in elements:
        if options == ["*"]:
            pieces.append(_LATIN_GAP if normaliser.script == "latin" else _CJK_GAP)
            if leading:
                # A match may start inside a leading gap: its first character is unknown.
                first = set()
            leading = False
            continue
        regexes = {_option_regex(o, normaliser, leading) for o in options}
        ordered = sorted(regexes, key=len, reverse=True)
        pieces.append(ordered[0] if len(ordered) == 1 else "(?:" + "|".join(ordered) + ")")
        if leading:
            first |= {n[0] for n in (normaliser.base(o).replace(" ", "") for o in options) if n}
            leading = any(not o.strip() for o in options)
    anchors = _phrase_anchors(elements, normaliser)
    latin = normaliser.script == "latin"
    joiner = _SEP if latin else ""
    last = [normaliser.base(o)[-1:] for o in elements[-1] if o.strip()]
    tail = r"(?![a-z0-9])" if latin and last and all(c.isalnum() for c in last) else ""
    rest = (joiner + joiner.join(pieces[1:]) if len(pieces) > 1 else "") + tail
    heads = _heads(elements[0], normaliser, rest)
    if not latin:
        return _PhraseRegex("".join(pieces), False, frozenset(first), anchors, heads)
    body = _SEP.join(pieces)
    # Word boundaries only where the phrase starts/ends with a letter or digit (not emoji).
    head = [normaliser.base(o)[:1] for o in elements[0] if o.strip()]
    bounded = bool(head) and all(c.isalnum() for c in head)
    return _PhraseRegex(body + tail, bounded, frozenset(first), anchors, heads)


def _heads(options: list[str], normaliser: Normaliser, rest: str) -> tuple[tuple[str, str], ...]:
    """Split a required first element by first character: ((char, regex after it), ...)."""
    if options == ["*"] or any(not o.strip() for o in options):
        return ()
    by_char: dict[str, set[str]] = {}
    for option in options:
        regex = _option_regex(option, normaliser, leading=True)
        char = normaliser.base(option).replace(" ", "")[:1]
        if not char or not regex.startswith(char) or re.escape(char) != char:
            return ()
        by_char.setdefault(char, set()).add(regex[1:])
    return tuple(
        (char, "(?:" + "|".join(sorted(tails, key=len, reverse=True)) + ")" + rest)
        for char, tails in sorted(by_char.items())
    )


# Long messages are matched only against regexes whose anchor words occur in them; keys are
# whole tokens and their first few letters (so "overdosed" opens the gate of "overdose").
_KEY_LENGTH = 6
GATE_FROM = 300  # characters; shorter messages search every regex (glued words stay found)
TOKEN = re.compile(r"[a-z0-9]+")
# Emoji and other symbols beyond Latin, Greek and Cyrillic letters, which emoji signals use.
_SYMBOL = re.compile(r"[^\x00-\u052f]")


# Words too frequent to make a useful gate; a phrase's anchor is taken from another element.
_COMMON = frozenset(
    [
        "a",
        "an",
        "the",
        "i",
        "im",
        "me",
        "my",
        "mine",
        "we",
        "us",
        "our",
        "you",
        "your",
        "he",
        "him",
        "his",
        "she",
        "her",
        "it",
        "its",
        "they",
        "them",
        "their",
        "to",
        "of",
        "in",
        "on",
        "at",
        "for",
        "with",
        "by",
        "from",
        "about",
        "as",
        "into",
        "over",
        "and",
        "or",
        "but",
        "if",
        "so",
        "not",
        "no",
        "do",
        "dont",
        "did",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "am",
        "s",
        "re",
        "m",
        "ve",
        "ll",
        "d",
        "have",
        "has",
        "had",
        "will",
        "wil",
        "would",
        "could",
        "can",
        "should",
        "get",
        "got",
        "go",
        "going",
        "gona",
        "want",
        "wana",
        "just",
        "realy",
        "very",
        "time",
        "one",
        "al",
        "this",
        "that",
        "these",
        "those",
        "what",
        "how",
        "why",
        "when",
        "where",
        "who",
        "there",
        "here",
        "some",
        "any",
        "like",
        "people",
        "thing",
        "things",
        "make",
        "now",
        "then",
    ]
)


def _anchor_key(word: str) -> str:
    return word[:_KEY_LENGTH]


def _phrase_anchors(
    elements: list[list[str]], normaliser: Normaliser
) -> tuple[frozenset[str], ...] | None:
    """Key sets for the two rarest required elements of a phrase, or None if none qualifies.

    Every match contains one key of each set: an option contributes its longest uncommon word
    (Latin) or its first character (CJK).
    """
    scored: list[tuple[int, frozenset[str]]] = []
    for options in elements:
        if options == ["*"] or any(not o.strip() for o in options):
            continue
        keys: set[str] = set()
        score = 1_000
        for option in options:
            norm = normaliser.base(option)
            if normaliser.script == "cjk":
                char = norm.replace(" ", "")[:1]
                if not char:
                    keys = set()
                    break
                keys.add(char)
                continue
            words = TOKEN.findall(norm)
            if not words and _SYMBOL.fullmatch(norm[:1]):
                keys.add(norm[:1])  # an emoji: its first character is the key
                score = min(score, 1)
                continue
            if not words or "".join(words) != norm.replace(" ", ""):
                keys = set()  # punctuation or mixed: no word to look for
                break
            longest = max(words, key=lambda w: (w not in _COMMON, len(w)))
            keys.add(_anchor_key(longest))
            score = min(score, len(longest) if longest not in _COMMON else 0)
        if keys:
            scored.append((score, frozenset(keys)))
    if not scored:
        return None
    scored.sort(key=lambda item: -item[0])
    return tuple(keys for _, keys in scored[:2])


def text_keys(text: str, script: str) -> frozenset[str]:
    """The keys a long message offers to the anchor gates."""
    if script == "cjk":
        return frozenset(text)
    tokens = set(TOKEN.findall(text))
    tokens |= {_anchor_key(t) for t in tokens if len(t) > _KEY_LENGTH}
    return frozenset(tokens.union(_SYMBOL.findall(text)))


def compile_signal(
    phrases: Iterable[str],
    patterns: Iterable[str],
    normaliser: Normaliser,
    where: str,
    anchors: Iterable[str] = (),
) -> tuple[Gated, ...]:
    """Compile a signal's phrases and patterns into as few regexes as search quickly."""
    compiled = [_phrase_regex(p, normaliser) for p in phrases if p.strip()]
    patterns = list(patterns)
    if not compiled and not patterns:
        raise ValueError(f"{where}: needs at least one phrase or pattern")
    regexes: list[Gated] = []

    def gate(group: list[_PhraseRegex]) -> Gate:
        if any(c.anchors is None for c in group):
            return None
        return tuple(c.anchors for c in group if c.anchors is not None)

    # Python's re tries every position; a leading boundary plus a lookahead on the possible
    # first characters lets almost every position fail at once (about 8x faster).
    for bounded in (True, False):
        # Phrases with a required first element branch on their first character, so each
        # position tries only the phrases that can start there (a trie of one level).
        trie = [c for c in compiled if c.bounded == bounded and c.heads]
        if trie:
            by_char: dict[str, list[str]] = {}
            for c in trie:
                for char, after in c.heads:
                    by_char.setdefault(char, []).append(after)
            head = r"(?<![a-z0-9])" if bounded else ""
            body = "|".join(f"{ch}(?:{'|'.join(alts)})" for ch, alts in sorted(by_char.items()))
            regexes.append(Gated(re.compile(f"{head}(?:{body})"), gate(trie)))
        group = [c for c in compiled if c.bounded == bounded and c.first and not c.heads]
        if group:
            chars = "".join(re.escape(ch) for ch in sorted(set().union(*(c.first for c in group))))
            head = r"(?<![a-z0-9])" if bounded else ""
            body = "|".join(f"(?:{c.body})" for c in group)
            regexes.append(Gated(re.compile(f"{head}(?=[{chars}])(?:{body})"), gate(group)))
    rest = [c for c in compiled if not c.first and not c.heads]
    if rest:
        regexes.append(Gated(re.compile("|".join(f"(?:{c.body})" for c in rest)), gate(rest)))
    if patterns:
        cjk = normaliser.script == "cjk"
        keys = frozenset(
            normaliser.base(a)[:1] if cjk else _anchor_key(normaliser.base(a))
            for a in anchors
            if a.strip()
        )
        # Patterns that start with a literal word (or a group of them) get their own gate;
        # the others share one regex gated by the signal's declared anchors, if any.
        shared: list[str] = []
        for pattern in patterns:
            own = None if cjk else _pattern_anchors(pattern)
            if own:
                regexes.append(Gated(re.compile(pattern), ((own,),)))
            else:
                shared.append(pattern)
        if shared:
            gate_all = ((keys,),) if keys else None
            regexes.append(Gated(re.compile("|".join(f"(?:{r})" for r in shared)), gate_all))
    return tuple(regexes)


_LEADING_ASSERTIONS = re.compile(r"^(?:\(\?<!?[^()]*\)|\^\\W\*)*")
_LITERAL_WORDS = re.compile(r"[a-z]+(?: [a-z]+)*")
_WORD_END = (" ", "\\W", "\\s", "(?!", "(?=", "$", "(?: ", "(?:\\W", "(?:\\s")


def _pattern_anchors(pattern: str) -> frozenset[str] | None:
    """Keys for a raw pattern that starts with literal words, e.g. ``(?<![a-z])(?:hope|wish)``.

    The first word of every alternative must be followed by a space, a closing group or a
    boundary in the pattern, so it is a whole token of any text the pattern matches.
    """
    rest = _LEADING_ASSERTIONS.sub("", pattern, count=1)
    if rest.startswith("(?:"):
        depth, end = 0, -1
        for i, ch in enumerate(rest):
            if ch in "()" and rest[i - 1 : i] == "\\":
                continue
            depth += 1 if ch == "(" else -1 if ch == ")" else 0
            if depth == 0:
                end = i
                break
        if end < 0 or rest[end + 1 : end + 2] in ("?", "*", "{", "+"):
            return None
        options = rest[3:end].split("|")
        if not all(_LITERAL_WORDS.fullmatch(o) for o in options):
            return None
        after = rest[end + 1 :]
        if after and not after.startswith(_WORD_END):
            return None
        return frozenset(_anchor_key(o.split(" ")[0]) for o in options)
    match = _LITERAL_WORDS.match(rest)
    if match is None:
        return None
    after = rest[match.end() :]
    if after and not after.startswith(_WORD_END):
        return None
    return frozenset({_anchor_key(match.group(0).split(" ")[0])})

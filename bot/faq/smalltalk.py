"""Small-talk detection: greetings, thanks and goodbyes that need a friendly reply, not a FAQ.

Only a message that is *entirely* small talk counts ("hi" or "thanks a lot!"), so "hi, I lost
my passport" still goes to triage and the FAQ. Phrases are content in
``knowledge/smalltalk.yaml``; a built-in minimal set keeps the bot polite without it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml

from bot.content import load_yaml
from bot.faq.normalize import normalize

SmallTalk = Literal["greeting", "thanks", "bye"]
KINDS: tuple[SmallTalk, ...] = ("greeting", "thanks", "bye")
DEFAULT_FILE = Path(__file__).resolve().parents[2] / "knowledge" / "smalltalk.yaml"

_BUILTIN: dict[str, dict[str, list[str]]] = {
    "greeting": {"en": ["hi", "hello", "hey"], "zh": ["你好", "您好"]},
    "thanks": {"en": ["thanks", "thank you"], "zh": ["谢谢", "多谢"]},
    "bye": {"en": ["bye", "goodbye"], "zh": ["再见", "拜拜"]},
    "filler": {"en": ["there", "bot"], "zh": ["啊", "呀", "哦"]},
}


class SmallTalkDetector:
    """Recognises whole-message small talk from phrase lists per kind and language."""

    def __init__(self, phrases: dict[str, dict[str, list[str]]]) -> None:
        self._phrases: dict[str, dict[str, SmallTalk]] = {}
        self._fillers: dict[str, list[str]] = {}
        for kind, langs in phrases.items():
            for lang, items in langs.items():
                norm = [normalize(p) for p in items if normalize(p)]
                if kind == "filler":
                    # Longest first so "very much" is removed before "much".
                    self._fillers[lang] = sorted(norm, key=len, reverse=True)
                elif kind in KINDS:
                    table = self._phrases.setdefault(lang, {})
                    for p in norm:
                        table.setdefault(p, kind)

    def detect(self, text: str, lang: str) -> SmallTalk | None:
        """Return the kind of small talk when the whole message is one, else None."""
        norm = normalize(text)
        if not norm or len(norm) > 60:
            return None
        langs = [lang, *(code for code in self._phrases if code != lang)]
        for code in langs:
            table = self._phrases.get(code, {})
            if norm in table:
                return table[norm]
            stripped = self._strip_fillers(norm, self._fillers.get(code, []))
            if stripped in table:
                return table[stripped]
            # "hello thanks" or "thanks bye": every part is small talk; report the last intent.
            parts = [p for p in self._split_known(stripped, table)]
            if parts:
                return table[parts[-1]]
        return None

    @staticmethod
    def _strip_fillers(norm: str, fillers: list[str]) -> str:
        out = f" {norm} "
        for f in fillers:
            out = out.replace(f" {f} ", " ") if f.isascii() else out.replace(f, "")
        return " ".join(out.split())

    @staticmethod
    def _split_known(text: str, table: dict[str, SmallTalk]) -> list[str]:
        # Greedy longest-phrase segmentation; any unknown remainder means "not small talk".
        if not text:
            return []
        phrases = sorted(table, key=len, reverse=True)
        parts: list[str] = []
        rest = text.replace(" ", "") if not text.isascii() else text
        while rest:
            rest = rest.strip()
            if not rest:
                break
            for p in phrases:
                cand = p.replace(" ", "") if not rest.isascii() else p
                if rest.startswith(cand) and (
                    not rest.isascii() or len(rest) == len(cand) or rest[len(cand)] == " "
                ):
                    parts.append(p)
                    rest = rest[len(cand) :]
                    break
            else:
                return []
        return parts


def load_smalltalk(path: Path = DEFAULT_FILE) -> SmallTalkDetector:
    """Build a detector from a smalltalk.yaml file (built-in phrases when it is missing)."""
    try:
        data = load_yaml(path)
    except (OSError, yaml.YAMLError):
        data = None
    if not isinstance(data, dict):
        return SmallTalkDetector(_BUILTIN)
    return SmallTalkDetector(data)


@lru_cache(maxsize=1)
def _default_detector() -> SmallTalkDetector:
    return load_smalltalk()


def detect_small_talk(text: str, lang: str) -> SmallTalk | None:
    """Classify a whole message as greeting / thanks / bye (repo phrase list), else None."""
    return _default_detector().detect(text, lang)

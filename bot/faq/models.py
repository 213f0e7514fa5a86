"""Pydantic models of the knowledge file schema, and the in-memory knowledge base."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.faq.index import Synonyms

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the knowledge files, located by file and line."""

    file: str
    line: int | None
    severity: Severity
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.severity}: {self.message}"


class Link(BaseModel):
    """A link shown under an answer."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1)
    url: str

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not v.startswith(("https://", "http://", "tg://")):
            raise ValueError("url must start with https://, http:// or tg://")
        return v


class LocalizedContent(BaseModel):
    """An entry's text in one language."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1)
    alternatives: list[str] = Field(default_factory=list)
    answer: str = Field(min_length=1)
    tests: list[str] = Field(default_factory=list)
    # Words naming what the entry is about, for an entry whose phrasings read like questions
    # about anything ("when does it open"): it is answered with confidence only when the
    # question names one of them; otherwise it is offered as a choice (empty: no such limit).
    about: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class LocalizedText:
    """Content resolved for a requested language; ``is_fallback`` when another one was used."""

    requested: str
    lang: str
    is_fallback: bool
    question: str
    alternatives: list[str]
    answer: str
    tests: list[str]


ENTRY_ID_MAX = 32
# The category of entries that answer "not ours, ask them" (the weather, the zoo …): for an
# out-of-domain question such an answer is the right one (``knowledge/faq/elsewhere.yaml``).
ELSEWHERE = "elsewhere"


class FaqEntry(BaseModel):
    """One FAQ entry: metadata plus content per language code."""

    model_config = ConfigDict(extra="forbid")

    # At most 32 characters: a "Did you mean" button carries it with the question's id (up to
    # 19 digits) in Telegram's 64 bytes of callback data.
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=ENTRY_ID_MAX)
    category: str = Field(min_length=1)
    updated: dt.date | None = None
    clarification: bool = False
    related: list[str] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)
    content: dict[str, LocalizedContent]
    source_file: str = ""
    source_line: int | None = None

    def text(self, lang: str, fallbacks: tuple[str, ...] = ("en",)) -> LocalizedText:
        """Content in ``lang``, else in the first available fallback, else in any language."""
        order = [lang, *fallbacks, *sorted(self.content)]
        chosen = next(code for code in order if code in self.content)
        c = self.content[chosen]
        return LocalizedText(
            requested=lang,
            lang=chosen,
            is_fallback=chosen != lang,
            question=c.question,
            alternatives=list(c.alternatives),
            answer=c.answer,
            tests=list(c.tests),
        )

    def phrasings(self, lang: str) -> list[str]:
        """Question and alternatives in ``lang`` (empty when the language is missing)."""
        c = self.content.get(lang)
        return [c.question, *c.alternatives] if c else []


@dataclass
class KnowledgeBase:
    """All FAQ entries plus per-language synonyms and small-talk phrases."""

    entries: dict[str, FaqEntry] = field(default_factory=dict)
    synonyms: dict[str, Synonyms] = field(default_factory=dict)
    smalltalk: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @property
    def languages(self) -> set[str]:
        """Language codes that at least one entry has."""
        return {code for e in self.entries.values() for code in e.content}

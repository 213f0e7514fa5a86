"""Helpers for the triage tests: small content folders written on the spot, the rules without
the models, and the deciding encoder (e5) wrapped in a counter (which texts the models make it
read)."""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from bot.triage import Triage
from bot.triage.model import ExamplesModel

# A rule file with one human signal, for content folders whose models are what is tested.
ONE_RULE = """
    lang: xx
    signals:
      - name: person
        level: human
        phrases: ["real person"]
"""


def write_rules(directory: Path, body: str = ONE_RULE, name: str = "xx.yaml") -> Path:
    """A rule file (YAML, dedented) written into a content folder; the folder."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(textwrap.dedent(body), encoding="utf-8")
    return directory


def rules_only(triage: Triage) -> Triage:
    """The same triage without its models: what the rules alone find."""
    return Triage(triage._languages)


class CountingEncoder:
    """Wraps an encoder, counting calls and the texts embedded."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[attr-defined]
        self.weights = inner.weights  # type: ignore[attr-defined]
        self.calls: list[list[str]] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return self.inner.embed(texts)  # type: ignore[attr-defined,no-any-return]


def counted(models: Iterable[ExamplesModel]) -> tuple[list[ExamplesModel], CountingEncoder]:
    """The models with the deciding encoder (e5, shared by them all) wrapped in one counter."""
    models = list(models)
    (e5,) = {id(m.encoder): m.encoder for m in models if m.decides}.values()
    counting = CountingEncoder(e5)
    return [dataclasses.replace(m, encoder=counting) if m.decides else m for m in models], counting

"""The deciding encoder (e5) wrapped in a counter: which texts the triage models make it read."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from bot.triage.model import ExamplesModel


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

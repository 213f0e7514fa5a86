"""Shared fixtures: the shipped triage content, loaded once per test session."""

from __future__ import annotations

import pytest

from bot.triage import DEFAULT_DIRECTORY, Triage


@pytest.fixture(scope="session")
def triage() -> Triage:
    """The classifier built from knowledge/triage (immutable, so sharing it is safe)."""
    return Triage.load(DEFAULT_DIRECTORY)

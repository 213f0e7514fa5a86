"""Fixtures for the FAQ engine tests: paths to the small knowledge directories in data/."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def data_dir() -> Path:
    """The directory holding the fixture knowledge bases."""
    return DATA

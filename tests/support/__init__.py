"""What the tests share, and the one place it lives: tests import helpers, classes and constants
from here (`tests.support.<concern>`), never from another test module or a conftest.

- `databases`: the PostgreSQL server the storage tests clone databases on.
- `e2e`: the end-to-end harness (the real application against the emulator), the people who
  act in it and the helpers that read what they see.
- `metrics`: reading a /metrics scrape.
- `processes`: the bot as a process of its own, a TCP proxy in front of PostgreSQL, nginx, a
  free loopback port, whether Redis answers (the benchmarks import it too, so it imports
  nothing else of the suite).
- `web`: an aiohttp application served on a loopback port.
- `alerts`, `cases`, `emulator`, `stats`, `triage`: helpers for those tests.

This `__init__` holds only the repository's paths: `benchmarks/` imports
`tests.support.processes` outside pytest.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KNOWLEDGE = REPO / "knowledge"

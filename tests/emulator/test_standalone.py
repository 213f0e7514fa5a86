"""The emulator is a package of its own: it imports nothing else from Safewell."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_emulator_loads_no_other_safewell_module() -> None:
    probe = (
        "import sys\n"
        "import bot.emulator, bot.emulator.__main__, bot.emulator.client, bot.emulator.server\n"
        "print(sorted(m for m in sys.modules if m.startswith('bot.')"
        " and not m.startswith('bot.emulator')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"

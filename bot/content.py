"""Reading the content files (YAML under knowledge/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# libyaml's C loader when PyYAML was built with it (it reads the triage examples in 0.02 s
# instead of 0.34 s, which every start and every test process pays), else the pure one.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path) -> Any:
    """A content file's data (safe: plain types only)."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)

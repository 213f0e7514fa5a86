"""Urgent-message triage: the rules (`rules.py`, their regexes built by `patterns.py`), the
models' second opinion (`model.py`) and their queue (`queue.py`), and `safewell triage`
(`cli.py`). See `rules.py` for how a message is classified."""

from bot.triage.rules import DEFAULT_DIRECTORY, LEVELS, Level, Triage, TriageResult

__all__ = ["DEFAULT_DIRECTORY", "LEVELS", "Level", "Triage", "TriageResult"]

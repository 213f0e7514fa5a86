"""`safewell triage "text"`: classify messages from the command line (for curators and tests)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from bot.triage import DEFAULT_DIRECTORY, Triage, TriageResult


def add_commands(subparsers: Any) -> None:
    """Add the ``triage`` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "triage",
        help="classify a message as crisis, emergency, human or normal ('-' reads stdin)",
    )
    parser.add_argument("text", help="the message, or '-' to read one message per line (JSON out)")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.add_argument("--lang", default=None, help="language hint (default: none)")
    parser.add_argument(
        "--knowledge",
        type=Path,
        default=DEFAULT_DIRECTORY,
        help=f"triage content directory (default: {DEFAULT_DIRECTORY})",
    )
    # The `safewell` CLI calls func(args, settings); settings are not needed here.
    parser.set_defaults(func=lambda args, *_: cmd_triage(args), uses_knowledge=False)


def _as_json(text: str, result: TriageResult) -> str:
    payload = {"text": text, "level": result.level, "signals": list(result.signals)}
    return json.dumps(payload, ensure_ascii=False)


def cmd_triage(
    args: argparse.Namespace, out: TextIO | None = None, stdin: TextIO | None = None
) -> int:
    """Print ``level  signals`` (or JSON); with '-' print one JSON object per input line."""
    out = out or sys.stdout
    try:
        triage = Triage.load(args.knowledge)
    except (OSError, ValueError) as exc:
        print(f"safewell triage: {exc}", file=sys.stderr)
        return 2
    if args.text == "-":
        for line in stdin or sys.stdin:
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            print(_as_json(text, triage.classify(text, args.lang)), file=out)
        return 0
    result = triage.classify(args.text, args.lang)
    if args.json:
        print(_as_json(args.text, result), file=out)
    else:
        print(f"{result.level}  {','.join(result.signals)}".rstrip(), file=out)
    return 0

"""The `triage` CLI subcommand: plain and JSON output, stdin JSON lines, errors."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from bot.triage.cli import add_commands


def _run(argv: list[str], stdin: str = "") -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="safewell")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    out = io.StringIO()
    from bot.triage.cli import cmd_triage

    code = cmd_triage(args, out=out, stdin=io.StringIO(stdin))
    return code, out.getvalue()


def test_plain_output_is_level_then_signals() -> None:
    code, out = _run(["triage", "I want to kill myself"])
    assert code == 0
    level, signals = out.rstrip("\n").split("  ")
    assert level == "crisis" and "kill_self" in signals.split(",")


def test_plain_output_for_normal_has_no_trailing_spaces() -> None:
    code, out = _run(["triage", "How do I renew my ID card?"])
    assert (code, out) == (0, "normal\n")


def test_json_output() -> None:
    code, out = _run(["triage", "我家着火了", "--json"])
    assert code == 0
    assert json.loads(out) == {
        "text": "我家着火了",
        "level": "emergency",
        "signals": ["fire_accident"],
    }
    assert "我家着火了" in out  # not \\u-escaped, so curators can read it


def test_stdin_gives_one_json_object_per_line() -> None:
    code, out = _run(["triage", "-"], stdin="转人工\n\nthis fine is killing me\r\n不想活了\n")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["text"], r["level"]) for r in rows] == [
        ("转人工", "human"),
        ("this fine is killing me", "normal"),
        ("不想活了", "crisis"),
    ]
    assert all(isinstance(r["signals"], list) for r in rows)


def test_custom_knowledge_directory(tmp_path: Path) -> None:
    (tmp_path / "xx.yaml").write_text(
        "lang: xx\nsignals: [{name: pineapple, level: human, phrases: [pineapple]}]\n",
        encoding="utf-8",
    )
    code, out = _run(["triage", "a pineapple please", "--knowledge", str(tmp_path)])
    assert (code, out) == (0, "human  pineapple\n")


def test_bad_knowledge_directory_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(["triage", "hello", "--knowledge", str(tmp_path / "missing")])
    assert code == 2 and out == ""
    assert "no triage" in capsys.readouterr().err


def test_func_default_matches_the_safewell_cli_calling_convention() -> None:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(["triage", "hello", "--json"])
    # bot/cli.py calls func(args, settings); the triage command ignores settings.
    assert args.func(args, None) == 0

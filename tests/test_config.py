"""Settings: defaults, one clear line per mistake, and the token never printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from tests.support import REPO

TOKEN = "123456789:AAH-valid_looking_secret_for_tests_only"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(
            (
                "BOT_",
                "DATABASE_",
                "REDIS_",
                "WEBHOOK_",
                "OFFICERS_",
                "FAQ_",
                "ALERTS_",
                "RETENTION_",
            )
        ):
            monkeypatch.delenv(key)


def test_defaults_need_nothing() -> None:
    s = load_settings(env_file=None)
    assert s.database.url.startswith("sqlite+aiosqlite:///")
    assert s.database.url.endswith("data/safewell.sqlite3")
    assert s.redis.url is None and s.webhook.url is None and s.officers.chat_id is None
    assert s.bot.default_language == "en"
    assert s.alerts.rate == 25
    r = s.retention
    assert (r.messages_days, r.faq_queries_days, r.processed_updates_days) == (30, 90, 3)
    assert (r.alert_deliveries_days, r.interval_minutes) == (30, 60)
    # The sample city's bureau keeps China Standard Time.
    assert s.bot.timezone == "Asia/Shanghai" and str(s.bot.zone) == "Asia/Shanghai"


def test_timezone_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TIMEZONE", "Europe/Berlin")
    assert str(load_settings(env_file=None).bot.zone) == "Europe/Berlin"


def test_lists_and_urls_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_ADMIN_IDS", "1, 22,333")
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h/db")
    monkeypatch.setenv("OFFICERS_CHAT_ID", "-1001234567890")
    monkeypatch.setenv("ALERTS_APPROVAL_SEVERITIES", "Extreme")
    s = load_settings(env_file=None)
    assert s.bot.admin_ids == [1, 22, 333]
    assert s.database.url == "postgresql+asyncpg://u@h/db"
    assert s.officers.chat_id == -1001234567890
    assert s.alerts.approval_severities == ["Extreme"]


def test_env_file_is_read(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(f"BOT_TOKEN={TOKEN}\nWEBHOOK_PORT=9000\n")
    s = load_settings(env_file=env)
    assert s.require_token().get_secret_value() == TOKEN
    assert s.webhook.port == 9000


def test_the_shipped_env_example_works_once_a_token_is_filled_in(tmp_path: Path) -> None:
    # The newcomer's path: `cp .env.example .env`, put the token in, run. Empty values such as
    # `WEBHOOK_SECRET=` mean "not set", not "set to the empty string".
    example = (REPO / ".env.example").read_text("utf-8")
    env = tmp_path / ".env"
    env.write_text(example.replace("BOT_TOKEN=\n", f"BOT_TOKEN={TOKEN}\n"), "utf-8")
    s = load_settings(env_file=env)
    assert s.require_token().get_secret_value() == TOKEN
    assert s.webhook.secret is None and s.webhook.url is None and s.redis.url is None
    assert s.officers.chat_id is None and s.alerts.api_token is None
    assert s.faq.answer_threshold is None
    assert s.bot.timezone == "Asia/Shanghai"


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("BOT_TOKEN", "not-a-token-secretvalue", "BOT_TOKEN: does not look like a bot token"),
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL: must be a sqlite"),
        ("WEBHOOK_PORT", "70000", "WEBHOOK_PORT:"),
        ("OFFICERS_CHAT_ID", "12345", "OFFICERS_CHAT_ID: must be a group id"),
        ("BOT_ADMIN_IDS", "1,abc", "BOT_ADMIN_IDS_1:"),
        ("REDIS_URL", "http://x", "REDIS_URL: must be a redis:// URL"),
        ("RETENTION_MESSAGES_DAYS", "-1", "RETENTION_MESSAGES_DAYS: Input should be greater"),
        ("RETENTION_INTERVAL_MINUTES", "0", "RETENTION_INTERVAL_MINUTES: Input should be"),
        ("BOT_TIMEZONE", "Mars/Olympus", "BOT_TIMEZONE: must be an IANA time zone"),
        ("BOT_TIMEZONE", "../../etc/passwd", "BOT_TIMEZONE: must be an IANA time zone"),
    ],
)
def test_invalid_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    assert str(info.value).startswith(expected)
    if var == "BOT_TOKEN":
        assert value not in str(info.value)


def bot_run(folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m bot run` started in `folder` with this environment, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_token_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env["FAQ_KNOWLEDGE_DIR"] = str(REPO / "knowledge")  # only the token is missing
    result = bot_run(tmp_path, env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "safewell: configuration error: BOT_TOKEN: is not set (ask @BotFather for a token)"
    ]


def test_bad_token_is_never_printed(tmp_path: Path) -> None:
    secret = "123:short"
    result = bot_run(tmp_path, {**os.environ, "BOT_TOKEN": secret})
    assert result.returncode == 2
    assert "BOT_TOKEN" in result.stderr
    assert secret not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_retention_from_env_and_zero_keeps_forever(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETENTION_MESSAGES_DAYS", "7")
    monkeypatch.setenv("RETENTION_FAQ_QUERIES_DAYS", "0")
    monkeypatch.setenv("RETENTION_INTERVAL_MINUTES", "15")
    r = load_settings(env_file=None).retention
    assert (r.messages_days, r.faq_queries_days, r.interval_minutes) == (7, 0, 15)


def test_an_empty_list_is_written_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    # `NAME=` means "not set" (the default); turning the two-person rule off takes `[]`.
    monkeypatch.setenv("ALERTS_APPROVAL_SEVERITIES", "")
    assert load_settings(env_file=None).alerts.approval_severities == ["Extreme", "Severe"]
    monkeypatch.setenv("ALERTS_APPROVAL_SEVERITIES", "[]")
    assert load_settings(env_file=None).alerts.approval_severities == []

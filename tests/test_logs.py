"""LOG_FORMAT=json: one JSON object per line, ids as fields, secrets redacted like plain logs."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bot.cli import RedactingFilter
from bot.config import ConfigError, load_settings
from bot.logs import JsonFormatter, formatter


def test_log_format_setting_picks_the_formatter(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not isinstance(formatter(load_settings(env_file=None).log.format), JsonFormatter)
    monkeypatch.setenv("LOG_FORMAT", "json")
    assert isinstance(formatter(load_settings(env_file=None).log.format), JsonFormatter)
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        load_settings(env_file=None)


def test_a_json_line_has_the_ids_and_the_exception_and_no_secret() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter(["123:SECRET-TOKEN"]))
    logger = logging.getLogger("safewell.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(
            "case %s relayed via %s", 7, "https://api/bot123:SECRET-TOKEN/x", extra={"case_id": 7}
        )
        try:
            raise ValueError("bad")
        except ValueError:
            logger.exception("update failed", extra={"update_id": 42, "citizen_id": 5})
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["case_id"] == 7 and first["level"] == "WARNING"
    assert first["logger"] == "safewell.test.json"
    assert "SECRET" not in first["message"] and "[REDACTED]" in first["message"]
    assert "update_id" not in first
    assert second["update_id"] == 42 and second["citizen_id"] == 5
    assert "ValueError: bad" in second["exception"]

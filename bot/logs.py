"""Log formats: plain lines for a terminal, or one JSON object per line (`LOG_FORMAT=json`).

The JSON form carries the ids a log search needs as fields of their own (`update_id`,
`citizen_id`, `case_id`, `alert_id`, and an update's `outcome` and `latency_ms`), taken from a
record's `extra`. Message texts are never put in a field; code logs them at DEBUG only.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Record attributes (set through `extra=`) copied into a JSON line when present.
FIELDS = (
    "update_id",
    "update_type",
    "outcome",
    "latency_ms",
    "citizen_id",
    "case_id",
    "alert_id",
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the known ids, exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter(kind: str) -> logging.Formatter:
    """The formatter for `LOG_FORMAT` ("text" or "json")."""
    return JsonFormatter() if kind == "json" else logging.Formatter(TEXT_FORMAT)

"""The staff member's progress and final report name the broadcast by what it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.alerts.engine import Progress
from bot.alerts.wiring import format_progress
from bot.db.models import Alert, AlertKind
from bot.i18n import Locales

LOCALES = Locales.load(Path(__file__).resolve().parents[2] / "knowledge" / "locales", "en")
COUNTS = {"sent": 2, "blocked": 1, "failed": 0, "pending": 0, "sending": 0}


def alert(alert_id: int, kind: AlertKind, references_id: int | None = None) -> Alert:
    return Alert(id=alert_id, kind=kind, references_id=references_id)


@pytest.mark.parametrize(
    ("row", "lang", "expected"),
    [
        (alert(1, AlertKind.ALERT), "en", "✅ <b>Alert #1 finished</b>"),
        (alert(3, AlertKind.CANCEL, 1), "en", "✅ <b>Cancellation #3 of alert #1 finished</b>"),
        (alert(2, AlertKind.UPDATE, 1), "en", "✅ <b>Update #2 of alert #1 finished</b>"),
        (alert(3, AlertKind.CANCEL, 1), "zh", "✅ <b>预警 #1 的取消通知（#3） 发送完成</b>"),
    ],
)
def test_final_report_names_the_alert(row: Alert, lang: str, expected: str) -> None:
    done = Progress(row.id, 3, COUNTS, 1.0, 3.0, done=True, status="sent")
    text = format_progress(done, LOCALES, lang, row)
    assert text.splitlines()[0] == expected


def test_progress_names_the_alert_a_cancellation_is_about() -> None:
    running = Progress(3, 10, {**COUNTS, "pending": 7}, 1.0, 3.0, status="sending")
    text = format_progress(running, LOCALES, "en", alert(3, AlertKind.CANCEL, 1))
    assert text.startswith("📣 <b>Cancellation #3 of alert #1</b> sending")

"""Human-readable durations, shared by the broadcast progress and the case statistics."""

from __future__ import annotations

import pytest

from bot.i18n import format_duration


@pytest.mark.parametrize(
    ("seconds", "chat", "table"),
    [(None, "–", "—"), (12.4, "12s", "12s"), (245, "4m 05s", "4m05s"), (11_520, "3h 12m", "3h12m")],
)
def test_format_duration(seconds: float | None, chat: str, table: str) -> None:
    assert format_duration(seconds) == chat  # the ETA in a staff member's progress message
    assert format_duration(seconds, sep="", missing="—") == table  # `safewell cases stats`

"""Interface texts: human-readable durations, and every language has every text with the same
placeholders."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from bot.i18n import Locales, format_duration


@pytest.mark.parametrize(
    ("seconds", "chat", "table"),
    [(None, "–", "—"), (12.4, "12s", "12s"), (245, "4m 05s", "4m05s"), (11_520, "3h 12m", "3h12m")],
)
def test_format_duration(seconds: float | None, chat: str, table: str) -> None:
    assert format_duration(seconds) == chat  # the ETA in a staff member's progress message
    assert format_duration(seconds, sep="", missing="—") == table  # `safewell cases stats`


def test_every_language_has_every_interface_text_with_the_same_placeholders() -> None:
    """A text missing in one language silently falls back to the default one; a placeholder
    missing or misspelt in a translation is a KeyError when the text is sent."""

    locales = Locales.load(Path("knowledge/locales"), "en")

    def fields(template: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name}

    default = locales.texts["en"]
    for lang, table in locales.texts.items():
        assert set(table) == set(default), (
            f"{lang}: missing {sorted(set(default) - set(table))}, "
            f"extra {sorted(set(table) - set(default))}"
        )
        for key, template in table.items():
            assert fields(template) == fields(default[key]), f"{lang}:{key}"
    assert locales.language_name("zh") == "中文" and locales.language_name("xx") == "xx"

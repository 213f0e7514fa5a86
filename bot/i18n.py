"""Interface texts from `knowledge/locales/<lang>.yaml`, with fallback to the default language.

Values are Telegram HTML written by curators; arguments are escaped here, so a citizen's name
can never inject markup.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.content import load_yaml
from bot.faq.normalize import detect_script

if TYPE_CHECKING:
    from bot.db.models import Citizen


def format_duration(seconds: float | None, *, sep: str = " ", missing: str = "–") -> str:
    """12s, 4m 05s, 3h 12m (``sep`` between the parts); ``missing`` when unknown."""
    if seconds is None:
        return missing
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{sep}{s % 60:02d}s"
    return f"{s // 3600}h{sep}{s % 3600 // 60:02d}m"


class Locales:
    """All interface texts, loaded once."""

    def __init__(self, texts: dict[str, dict[str, str]], default: str) -> None:
        if default not in texts:
            raise ValueError(f"no locale file for the default language {default!r}")
        self.texts = texts
        self.default = default

    @classmethod
    def load(cls, directory: Path, default: str) -> Locales:
        """Read `<lang>.yaml` and `<lang>.<area>.yaml` files; a key defined twice is an error."""
        texts: dict[str, dict[str, str]] = {}
        for path in sorted(directory.glob("*.yaml")):
            lang = path.name.split(".")[0]
            data = load_yaml(path) or {}
            table = texts.setdefault(lang, {})
            for key, value in data.items():
                if str(key) in table:
                    raise ValueError(f"{path}: interface text {key!r} is defined twice")
                table[str(key)] = str(value).strip()
        return cls(texts, default)

    @property
    def languages(self) -> list[str]:
        return sorted(self.texts)

    def language_name(self, code: str) -> str:
        """A language's own name ("English", "中文"): `language_name` in its locale file."""
        return self.texts.get(code, {}).get("language_name", code)

    def resolve(self, lang: str | None) -> str:
        """The supported language closest to a Telegram language code ('zh-hans' -> 'zh')."""
        if lang:
            lang = lang.lower()
            if lang in self.texts:
                return lang
            base = lang.split("-")[0].split("_")[0]
            if base in self.texts:
                return base
        return self.default

    def for_citizen(
        self, citizen: Citizen | None, text: str = "", telegram_language: str | None = None
    ) -> str:
        """A person's language: their /language choice, else the script of what they just
        wrote (if anything), else Telegram's language code (the citizen's stored one, or
        `telegram_language` for someone not stored yet), else the default."""
        if citizen is not None and citizen.language:
            return self.resolve(citizen.language)
        script = detect_script(text) if text else None
        if script in self.texts:
            return str(script)
        return self.resolve(citizen.telegram_language if citizen else telegram_language)

    async def for_user(self, session: AsyncSession, user_id: int) -> str:
        """The language to write to someone in who is not writing now (staff, authors)."""
        from bot.db.models import Citizen

        return self.for_citizen(await session.get(Citizen, user_id))

    def t(self, lang: str | None, key: str, **kwargs: Any) -> str:
        """The text for key in lang (or the default language), arguments HTML-escaped."""
        lang = self.resolve(lang)
        template = self.texts[lang].get(key) or self.texts[self.default].get(key)
        if template is None:
            raise KeyError(f"missing interface text {key!r}")
        safe = {k: html.escape(str(v), quote=False) for k, v in kwargs.items()}
        return template.format(**safe) if safe else template

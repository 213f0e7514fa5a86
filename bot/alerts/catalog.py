"""Alert categories and districts from content (alert_categories.yaml and districts.yaml).

Names are per language with a fallback to English, so a bureau can add a language without
touching code. Geocodes map CAP `<geocode>` values to districts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.content import load_yaml

ALL_DISTRICTS = "*"


@dataclass(frozen=True)
class Named:
    """A category or district: id, names per language, and extras."""

    id: str
    names: dict[str, str]
    cap_category: str = "Other"
    geocodes: tuple[str, ...] = ()

    def name(self, lang: str) -> str:
        """The name in lang, else English, else the id."""
        base = lang.lower().replace("_", "-").split("-")[0]
        return self.names.get(base) or self.names.get("en") or self.id


@dataclass
class Catalog:
    """Everything citizens can subscribe to."""

    categories: dict[str, Named] = field(default_factory=dict)
    districts: dict[str, Named] = field(default_factory=dict)

    @classmethod
    def load(cls, knowledge_dir: Path) -> Catalog:
        """Read both content files; a missing or malformed file raises ValueError."""
        cats = _read(knowledge_dir / "alert_categories.yaml", "categories")
        dists = _read(knowledge_dir / "districts.yaml", "districts")
        catalog = cls()
        for item in cats:
            named = _named(item)
            catalog.categories[named.id] = Named(
                named.id, named.names, cap_category=str(item.get("cap_category", "Other"))
            )
        for item in dists:
            named = _named(item)
            codes = tuple(str(c) for c in item.get("geocodes", []) or [])
            catalog.districts[named.id] = Named(named.id, named.names, geocodes=codes)
        return catalog

    def category_name(self, category_id: str, lang: str) -> str:
        """Display name of a category id (the id itself when unknown)."""
        found = self.categories.get(category_id)
        return found.name(lang) if found else category_id

    def district_name(self, district_id: str, lang: str, all_label: str = "All districts") -> str:
        """Display name of a district id ('*' is every district)."""
        if district_id == ALL_DISTRICTS:
            return all_label
        found = self.districts.get(district_id)
        return found.name(lang) if found else district_id

    def districts_text(self, ids: list[str], lang: str, all_label: str) -> str:
        """Comma-separated district names, or the all-districts label for an empty list."""
        if not ids:
            return all_label
        sep = "、" if lang.startswith("zh") else ", "
        return sep.join(self.district_name(d, lang) for d in ids)

    def district_for_geocode(self, code: str) -> str | None:
        """The district whose geocodes include code."""
        for district in self.districts.values():
            if code in district.geocodes:
                return district.id
        return None

    def category_for_cap(self, cap_categories: list[str], event: str = "") -> str | None:
        """Our category for CAP categories: an id named in the event, else the first CAP match."""
        lowered = event.lower()
        for cat in self.categories.values():
            if cat.id in lowered:
                return cat.id
        for code in cap_categories:
            for cat in self.categories.values():
                if cat.cap_category == code:
                    return cat.id
        return None


ID_MAX = 24
_ID = re.compile(rf"[a-z0-9][a-z0-9-]{{0,{ID_MAX - 1}}}")


def _read(path: Path, key: str) -> list[dict[str, Any]]:
    data = load_yaml(path) or {}
    items = data.get(key)
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a list under {key!r}")
    return [i for i in items if isinstance(i, dict)]


def _named(item: dict[str, Any]) -> Named:
    ident = str(item.get("id", "")).strip()
    if not ident:
        raise ValueError(f"an entry has no id: {item!r}")
    if not _ID.fullmatch(ident):
        # Buttons carry a category and a district id in Telegram's 64 bytes of callback data.
        raise ValueError(
            f"id {ident!r}: at most {ID_MAX} characters, lowercase letters, digits and '-'"
        )
    names = {
        str(k): str(v)
        for k, v in item.items()
        if k not in {"id", "cap_category", "geocodes"} and isinstance(v, str)
    }
    return Named(ident, names)

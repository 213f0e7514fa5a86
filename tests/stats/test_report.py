"""The charts and `safewell report`: real PNGs in either language, and a page that carries
the figures and every chart, on both databases."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
from datetime import date
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from bot.cli import main
from bot.db.models import AuditLog
from bot.db.session import create_engine, create_sessionmaker
from bot.i18n import Locales
from bot.stats import charts
from bot.stats.figures import Period, collect
from tests.support.stats import SHANGHAI, seed_week

LOCALES = Locales.load(Path("knowledge/locales"), "en")
WEEK = Period(date(2026, 3, 1), date(2026, 3, 7), SHANGHAI)


async def _figures(url: str, period: Period = WEEK) -> charts.Figures:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            return await collect(session, period)
    finally:
        await engine.dispose()


def _image(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


async def _seed(url: str) -> None:
    engine = create_engine(url)
    try:
        await seed_week(create_sessionmaker(engine))
    finally:
        await engine.dispose()


async def test_every_chart_draws_with_and_without_data(db_url: str) -> None:
    await _seed(db_url)
    full = await _figures(db_url)
    empty = await _figures(db_url, Period(date(2025, 1, 1), date(2025, 1, 1), SHANGHAI))
    for figures in (full, empty):
        for _name, _title, draw in charts.REPORT_CHARTS:
            image = _image(draw(figures, lambda key: LOCALES.t("en", key)))
            assert image.format == "PNG" and image.size[0] >= 600 and image.size[1] >= 250
        assert _image(charts.overview(figures, lambda key: LOCALES.t("en", key))).size[0] > 1000


def test_chinese_labels_need_a_cjk_font(caplog: pytest.LogCaptureFixture) -> None:
    """With a CJK font the charts are drawn in Chinese (a missing glyph would be a warning,
    which this suite turns into an error); without one they fall back to English, logged."""
    if charts._cjk_font() is None:
        if os.environ.get("SAFEWELL_REQUIRE_FONTS"):
            pytest.fail("no CJK font: install Debian's fonts-wqy-microhei")
        with caplog.at_level(logging.WARNING):
            assert charts.chart_language("zh") == "en"
        assert "no CJK font found" in caplog.text
        return
    assert charts.chart_language("zh") == "zh"
    figures = asyncio.run(_figures_of_nothing())
    png = charts.overview(figures, lambda key: LOCALES.t("zh", key))
    assert _image(png).format == "PNG"


async def _figures_of_nothing() -> charts.Figures:
    engine = create_engine("sqlite+aiosqlite://")
    from bot.db.models import Base

    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    try:
        async with create_sessionmaker(engine)() as session:
            return await collect(session, WEEK)
    finally:
        await engine.dispose()


def test_report_writes_a_page_and_the_charts(
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("BOT_TIMEZONE", "Asia/Shanghai")
    asyncio.run(_seed(db_url))
    out = tmp_path / "report"
    args = ["--env-file", "/nonexistent", "report", "--from", "2026-03-01", "--to", "2026-03-07"]
    assert main([*args, "--out", str(out)]) == 0
    assert "report written" in capsys.readouterr().out
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<title>Safewell report</title>" in page
    assert "2026-03-01 – 2026-03-07 · Asia/Shanghai" in page
    assert "Messages from citizens: <b>11</b>" in page
    assert "• How do I register my dog? — 3" in page
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == len(charts.REPORT_CHARTS) == 5
    for name, _title, _draw in charts.REPORT_CHARTS:
        assert _image((out / name).read_bytes()).format == "PNG"

    async def audited() -> AuditLog:
        engine = create_engine(db_url)
        try:
            async with create_sessionmaker(engine)() as session:
                return (
                    await session.scalars(select(AuditLog).where(AuditLog.action == "report.write"))
                ).one()
        finally:
            await engine.dispose()

    row = asyncio.run(audited())
    assert row.details == {"first": "2026-03-01", "last": "2026-03-07", "language": "en"}

    assert main([*args[:4], "2026-03-07", "--to", "2026-03-01", "--out", str(out)]) == 2
    assert "the period ends before it starts" in capsys.readouterr().err

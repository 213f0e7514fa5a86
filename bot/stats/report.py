"""`safewell report --from DATE --to DATE --out DIR`: a period's figures as an HTML page with
the charts embedded (one file to mail or print), plus each chart as a PNG file beside it."""

from __future__ import annotations

import argparse
import asyncio
import base64
import html
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.stats.figures import Period, PeriodError

PAGE = """<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, "Noto Sans CJK SC", "WenQuanYi Micro Hei", sans-serif;
       max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; line-height: 1.5; }}
h1 {{ font-size: 1.6rem; margin-bottom: 0.2rem; }}
.meta {{ color: #666; margin-top: 0; }}
section.figures p {{ background: #f6f7f9; border-radius: 6px; padding: 0.8rem 1rem; }}
figure {{ margin: 2rem 0; }}
figure img {{ max-width: 100%; border: 1px solid #e3e3e3; border-radius: 6px; }}
figcaption {{ color: #555; font-size: 0.9rem; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="meta">{period} · {zone} · {generated}</p>
<section class="figures">
{paragraphs}
</section>
{charts}
</body>
</html>
"""


@dataclass(frozen=True)
class Written:
    page: Path
    charts: list[Path]


def page(
    title: str,
    period: Period,
    generated: str,
    lang: str,
    text: str,
    charts: list[tuple[str, str, bytes]],
) -> str:
    """The report page: the summary's paragraphs (Telegram HTML is HTML) and each chart as an
    embedded image with its title."""
    paragraphs = "\n".join(f"<p>{part.replace(chr(10), '<br>')}</p>" for part in text.split("\n\n"))
    figures = "\n".join(
        f'<figure><img src="data:image/png;base64,{base64.b64encode(png).decode()}" '
        f'alt="{html.escape(caption)}"><figcaption>{html.escape(caption)} '
        f"({html.escape(name)})</figcaption></figure>"
        for name, caption, png in charts
    )
    return PAGE.format(
        lang=html.escape(lang),
        title=html.escape(title),
        period=html.escape(str(period)),
        zone=html.escape(str(period.zone)),
        generated=html.escape(generated),
        paragraphs=paragraphs,
        charts=figures,
    )


async def write_report(settings: Settings, period: Period, out: Path, lang: str) -> Written:
    """Read the figures, draw the charts and write the page and the PNG files into `out`."""
    from bot.alerts.catalog import Catalog
    from bot.db import repo
    from bot.db.migrate import upgrade_async
    from bot.db.models import utcnow
    from bot.db.session import create_engine, create_sessionmaker
    from bot.faq.loader import load_knowledge
    from bot.i18n import Locales
    from bot.stats import charts
    from bot.stats.figures import collect
    from bot.stats.text import summary

    knowledge = settings.faq.knowledge_dir
    locales = Locales.load(knowledge / "locales", settings.bot.default_language)
    lang = locales.resolve(lang)
    catalog = Catalog.load(knowledge)
    kb, _problems = load_knowledge(knowledge, settings.bot.languages)
    await upgrade_async(settings.database.url)
    engine = create_engine(settings.database.url)
    try:
        sessions = create_sessionmaker(engine)
        async with sessions() as session:
            figures = await collect(session, period)
        text = summary(figures, locales, lang, catalog, kb.entries)
        chart_lang = charts.chart_language(lang, settings.bot.default_language)

        def label(key: str) -> str:
            return locales.t(chart_lang, key)

        drawn = [
            (name, locales.t(lang, title), await asyncio.to_thread(draw, figures, label))
            for name, title, draw in charts.REPORT_CHARTS
        ]
        generated = utcnow().astimezone(period.zone).strftime("%Y-%m-%d %H:%M")
        html_page = page(
            locales.t(lang, "stats_report_title"), period, generated, lang, text, drawn
        )
        written = await asyncio.to_thread(_write, out, html_page, drawn)
        async with sessions() as session:
            repo.audit(
                session,
                "report.write",
                actor_id=None,
                first=period.first.isoformat(),
                last=period.last.isoformat(),
                language=lang,
            )
            await session.commit()
    finally:
        await engine.dispose()
    return written


def _write(out: Path, html_page: str, charts: list[tuple[str, str, bytes]]) -> Written:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, _caption, png in charts:
        (out / name).write_bytes(png)
        paths.append(out / name)
    report = out / "report.html"
    report.write_text(html_page, encoding="utf-8")
    return Written(report, paths)


def iso_day(value: str) -> date:
    """An argparse type: a day as YYYY-MM-DD."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    try:
        period = Period(args.first, args.last, settings.bot.zone)
    except PeriodError as exc:
        print(f"safewell report: {exc}", file=sys.stderr)
        return 2
    written = asyncio.run(
        write_report(
            settings, period, Path(args.out), args.language or settings.bot.default_language
        )
    )
    print(f"report written: {written.page} ({len(written.charts)} charts beside it)")
    return 0


def add_commands(sub: Any) -> None:
    """Register `report` on the CLI's subparsers."""
    p = sub.add_parser("report", help="a period's figures as an HTML page with charts (and PNGs)")
    p.add_argument(
        "--from", dest="first", type=iso_day, required=True, help="first day, YYYY-MM-DD"
    )
    p.add_argument("--to", dest="last", type=iso_day, required=True, help="last day, YYYY-MM-DD")
    p.add_argument("--out", required=True, help="folder to write report.html and the PNG files to")
    p.add_argument("--language", help="en, zh… (default: BOT_DEFAULT_LANGUAGE)")
    p.set_defaults(func=_cmd_report)

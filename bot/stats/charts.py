"""Charts of a period's figures as PNG images (matplotlib, no display needed).

Each function returns the PNG bytes of one chart labelled in one language. Chinese labels need
a CJK font on the machine (Debian: `fonts-wqy-microhei` or `fonts-noto-cjk`); without one the
charts are labelled in English and a warning is logged, so a chart never shows empty boxes.
Rendering is CPU work (~0.1-0.3 s a chart): call it in a worker thread from the event loop.
Each chart is its own `Figure` (no pyplot state), so threads do not share one. Importing this
module imports matplotlib (about a second): the bot imports it on the first /stats only.
"""

from __future__ import annotations

import functools
import io
import logging
import re
from collections.abc import Callable

import matplotlib
from matplotlib import dates, font_manager
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bot.i18n import format_duration
from bot.stats.figures import OUTCOMES, Figures

matplotlib.use("Agg")

log = logging.getLogger(__name__)

Label = Callable[[str], str]

# Languages whose labels need a CJK font, and the font families that have one.
CJK_LANGUAGES = frozenset({"zh", "ja", "ko"})
CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "PingFang SC",
    "SimHei",
)
_CJK_FILE = re.compile(r"cjk|wqy|sourcehan|yahei|pingfang|simhei", re.IGNORECASE)

COLOURS = {
    "answer": "#2e7d32",
    "suggest": "#f9a825",
    "none": "#c62828",
    "throttled": "#9e9e9e",
    "officer": "#1565c0",
    "sent": "#2e7d32",
    "blocked": "#9e9e9e",
    "failed": "#c62828",
    "waiting": "#f9a825",
    "first": "#1565c0",
    "close": "#6a1b9a",
    "line": "#1565c0",
}
DPI = 110


@functools.cache
def _cjk_font() -> str | None:
    """Set matplotlib's fonts up once; the CJK font family found, if any."""
    names = {f.name for f in font_manager.fontManager.ttflist}
    if not any(n in names for n in CJK_FAMILIES):
        # matplotlib caches the font list; a font installed after that cache was built is
        # only seen by looking at the system's font files again.
        for path in font_manager.findSystemFonts():
            if _CJK_FILE.search(path):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        names = {f.name for f in font_manager.fontManager.ttflist}
    found = next((n for n in CJK_FAMILIES if n in names), None)
    # DejaVu Sans first (its Latin and digits), the CJK family for the glyphs it lacks: a list
    # of families is matplotlib's per-glyph fallback.
    matplotlib.rcParams["font.family"] = ["DejaVu Sans", *([found] if found else [])]
    return found


def chart_language(lang: str, fallback: str = "en") -> str:
    """`lang` if this machine can draw its labels, else `fallback` (logged)."""
    if lang in CJK_LANGUAGES and _cjk_font() is None:
        log.warning(
            "no CJK font found: charts are labelled in %r instead of %r (install Debian's "
            "fonts-wqy-microhei or fonts-noto-cjk)",
            fallback,
            lang,
        )
        return fallback
    return lang


def _figure(width: float = 9.0, height: float = 4.6) -> Figure:
    _cjk_font()
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", facecolor="white")
    return buffer.getvalue()


def _legend(ax: Axes) -> None:
    """The legend under the chart, never over its bars."""
    ax.figure.legend(
        *ax.get_legend_handles_labels(),
        loc="outside lower center",
        ncols=5,
        frameon=False,
        fontsize=9,
    )


def _no_data(ax: Axes, label: Label) -> None:
    ax.text(0.5, 0.5, label("stats_chart_no_data"), ha="center", va="center", fontsize=12)
    ax.set_axis_off()


def _messages_per_day(ax: Axes, figures: Figures, label: Label) -> None:
    ax.set_title(label("stats_chart_messages"), loc="left", fontsize=12)
    if not figures.messages:
        _no_data(ax, label)
        return
    days = figures.period.days
    bottom = [0] * len(days)
    for outcome in OUTCOMES:
        counts = [figures.per_day[day][outcome] for day in days]
        if not any(counts):
            continue
        ax.bar(
            dates.date2num(days),
            counts,
            bottom=bottom,
            color=COLOURS[outcome],
            label=label(f"stats_outcome_{outcome}"),
            width=0.8,
        )
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    ax.set_ylabel(label("stats_chart_messages_axis"))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.xaxis.set_major_locator(dates.AutoDateLocator(maxticks=10))
    ax.xaxis.set_major_formatter(dates.DateFormatter("%m-%d"))
    _legend(ax)
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def _outcome_shares(ax: Axes, figures: Figures, label: Label) -> None:
    ax.set_title(label("stats_chart_outcomes"), loc="left", fontsize=12)
    shown = [o for o in ("answer", "suggest", "none") if figures.outcomes[o]]
    if not shown:
        _no_data(ax, label)
        return
    values = [figures.outcomes[o] for o in shown]
    total = sum(values)
    ax.pie(
        values,
        labels=[
            f"{label(f'stats_outcome_{o}')}\n{v} ({v / total:.0%})"
            for o, v in zip(shown, values, strict=True)
        ],
        colors=[COLOURS[o] for o in shown],
        startangle=90,
        counterclock=False,
        wedgeprops={"width": 0.45, "edgecolor": "white"},
        textprops={"fontsize": 9},
    )
    ax.set_aspect("equal")


def overview(figures: Figures, label: Label) -> bytes:
    """/stats's image: messages per day beside what the FAQ did with the questions."""
    fig = _figure(11.0, 4.6)
    left, right = fig.subplots(1, 2, width_ratios=[2.2, 1])
    _messages_per_day(left, figures, label)
    _outcome_shares(right, figures, label)
    return _png(fig)


def messages_per_day(figures: Figures, label: Label) -> bytes:
    fig = _figure()
    _messages_per_day(fig.subplots(), figures, label)
    return _png(fig)


def outcome_shares(figures: Figures, label: Label) -> bytes:
    fig = _figure(6.0, 4.6)
    _outcome_shares(fig.subplots(), figures, label)
    return _png(fig)


def response_times(figures: Figures, label: Label) -> bytes:
    """Time to first reply and to close, median and 90th percentile, per priority (minutes)."""
    fig = _figure()
    ax = fig.subplots()
    ax.set_title(label("stats_chart_response"), loc="left", fontsize=12)
    rows = [r for r in figures.response if r.cases]
    if not rows:
        _no_data(ax, label)
        return _png(fig)
    series = (
        ("first_reply_median", "stats_chart_first_p50", COLOURS["first"], 1.0),
        ("first_reply_p90", "stats_chart_first_p90", COLOURS["first"], 0.45),
        ("close_median", "stats_chart_close_p50", COLOURS["close"], 1.0),
        ("close_p90", "stats_chart_close_p90", COLOURS["close"], 0.45),
    )
    width = 0.8 / len(series)
    for i, (attr, key, colour, alpha) in enumerate(series):
        seconds = [getattr(r, attr) for r in rows]
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(rows))]
        bars = ax.bar(
            xs,
            [(s or 0) / 60 for s in seconds],
            width=width,
            color=colour,
            alpha=alpha,
            label=label(key),
        )
        ax.bar_label(bars, labels=[format_duration(s, missing="") for s in seconds], fontsize=8)
    ax.set_xticks(
        range(len(rows)),
        [f"{label(f'stats_priority_{r.priority}')} ({r.cases})" for r in rows],
    )
    ax.set_ylabel(label("stats_chart_minutes"))
    _legend(ax)
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def subscribers(figures: Figures, label: Label) -> bytes:
    fig = _figure()
    ax = fig.subplots()
    ax.set_title(label("stats_chart_subscribers"), loc="left", fontsize=12)
    if not figures.subscribers.total:
        _no_data(ax, label)
        return _png(fig)
    days = figures.period.days
    counts = [figures.subscribers.per_day[d] for d in days]
    marker = "o" if len(days) <= 31 else None
    xs = dates.date2num(days)
    ax.plot(xs, counts, color=COLOURS["line"], linewidth=2, marker=marker)
    ax.fill_between(xs, counts, alpha=0.15, color=COLOURS["line"])
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(label("stats_chart_citizens_axis"))
    ax.xaxis.set_major_locator(dates.AutoDateLocator(maxticks=10))
    ax.xaxis.set_major_formatter(dates.DateFormatter("%m-%d"))
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def alert_deliveries(figures: Figures, label: Label) -> bytes:
    """One bar per alert (newest at the top): delivered, blocked, failed, not sent yet."""
    alerts = figures.alerts[-20:]  # the latest twenty stay readable
    fig = _figure(9.0, max(2.6, 1.2 + 0.38 * len(alerts)))
    ax = fig.subplots()
    ax.set_title(label("stats_chart_alerts"), loc="left", fontsize=12)
    if not alerts:
        _no_data(ax, label)
        return _png(fig)
    names = [f"#{a.id} {_short(a.headline or a.category)}" for a in alerts]
    left = [0] * len(alerts)
    for state in ("sent", "blocked", "failed", "waiting"):
        counts = [getattr(a, state) for a in alerts]
        if not any(counts):
            continue
        ax.barh(
            names,
            counts,
            left=left,
            color=COLOURS[state],
            label=label(f"stats_delivery_{state}"),
        )
        left = [x + c for x, c in zip(left, counts, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel(label("stats_chart_citizens_axis"))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend(ax)
    ax.grid(axis="x", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def _short(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# The report's charts, in the order the page shows them: (file name, title key, function).
REPORT_CHARTS: tuple[tuple[str, str, Callable[[Figures, Label], bytes]], ...] = (
    ("messages-per-day.png", "stats_chart_messages", messages_per_day),
    ("outcome-shares.png", "stats_chart_outcomes", outcome_shares),
    ("response-times.png", "stats_chart_response", response_times),
    ("subscribers.png", "stats_chart_subscribers", subscribers),
    ("alert-deliveries.png", "stats_chart_alerts", alert_deliveries),
)

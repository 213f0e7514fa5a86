"""A period's figures as text in one language (Telegram HTML, which is also valid HTML for the
report page). Lists are cut to a few items, so the text fits one Telegram message."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Mapping

from bot.alerts.catalog import Catalog
from bot.faq.models import FaqEntry
from bot.i18n import Locales, format_duration
from bot.stats.figures import Figures

# Items shown per list (top questions, gaps, categories, districts).
SHOWN = 5
# A gap's example question is a citizen's text: cut short, and escaped.
EXAMPLE_CHARS = 60


def _items(counts: Counter[str], name: Callable[[str], str], t: Callable[..., str]) -> str:
    if not counts:
        return t("stats_none")
    top = counts.most_common(SHOWN)
    shown = ", ".join(f"{name(key)} {n}" for key, n in top)
    more = len(counts) - len(top)
    if more <= 0:
        return shown
    # Plain text again: the caller passes it to `t`, which escapes it once.
    return html.unescape(t("stats_more", shown=shown, more=more))


def summary(
    figures: Figures,
    locales: Locales,
    lang: str,
    catalog: Catalog,
    entries: Mapping[str, FaqEntry],
) -> str:
    """Every figure of the period, one paragraph per subject (FAQ entries by their question
    in `lang`)."""

    def t(key: str, **kwargs: object) -> str:
        return locales.t(lang, key, **kwargs)

    o = figures.outcomes
    period = figures.period
    parts = [
        t("stats_title", period=str(period), zone=str(period.zone)),
        t(
            "stats_messages",
            messages=figures.messages,
            questions=figures.questions,
            officer=o["officer"],
            throttled=o["throttled"],
        )
        + "\n"
        + t(
            "stats_faq",
            answer=_count_share(o["answer"], figures.share("answer")),
            suggest=_count_share(o["suggest"], figures.share("suggest")),
            none=_count_share(o["none"], figures.share("none")),
            up=figures.feedback["up"],
            down=figures.feedback["down"],
        ),
    ]
    if figures.top_questions:
        parts.append(
            "\n".join(
                [t("stats_top_questions")]
                + [
                    t("stats_item", name=_title(entries, entry, lang), count=n)
                    for entry, n in figures.top_questions
                ]
            )
        )
    if figures.top_gaps:
        parts.append(
            "\n".join(
                [t("stats_top_gaps")]
                + [
                    t("stats_item", name=_cut(gap.example), count=gap.count)
                    for gap in figures.top_gaps
                ]
            )
        )
    reasons, status = figures.cases_by_reason, figures.cases_by_status
    cases = [
        t(
            "stats_cases",
            total=sum(reasons.values()),
            crisis=reasons["crisis"],
            emergency=reasons["emergency"],
            human=reasons["human"],
            report=reasons["report"],
            open=status["open"],
            claimed=status["claimed"],
            closed=status["closed"],
        )
    ]
    for row in figures.response:
        if not row.cases:
            continue
        cases.append(
            t(
                "stats_response",
                priority=f"{t(f'stats_priority_{row.priority}')} ({row.cases})",
                first50=format_duration(row.first_reply_median),
                first90=format_duration(row.first_reply_p90),
                close50=format_duration(row.close_median),
                close90=format_duration(row.close_p90),
            )
        )
    if figures.rating_avg is not None:
        cases.append(
            t(
                "stats_ratings",
                avg=f"{figures.rating_avg:.1f}",
                count=sum(figures.ratings.values()),
            )
        )
    parts.append("\n".join(cases))
    parts.append(
        t(
            "stats_alerts",
            alerts=len(figures.alerts),
            recipients=figures.alert_total("recipients"),
            sent=figures.alert_total("sent"),
            blocked=figures.alert_total("blocked"),
            failed=figures.alert_total("failed"),
            waiting=figures.alert_total("waiting"),
        )
    )
    all_label = t("sub_all_districts")
    parts.append(
        "\n".join(
            [
                t("stats_subscribers", total=figures.subscribers.total),
                t(
                    "stats_by_category",
                    items=_items(
                        figures.subscribers.by_category, lambda c: catalog.category_name(c, lang), t
                    ),
                ),
                t(
                    "stats_by_district",
                    items=_items(
                        figures.subscribers.by_district,
                        lambda d: catalog.district_name(d, lang, all_label),
                        t,
                    ),
                ),
            ]
        )
    )
    return "\n\n".join(parts)


def _title(entries: Mapping[str, FaqEntry], entry_id: str, lang: str) -> str:
    entry = entries.get(entry_id)  # an entry removed since is shown by its id
    return entry.text(lang).question if entry else entry_id


def _count_share(count: int, share: float | None) -> str:
    return f"{count} ({share:.0%})" if share is not None else str(count)


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"


def plain(text: str) -> str:
    """Telegram HTML as plain text (for a terminal)."""
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", text))

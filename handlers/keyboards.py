"""Inline keyboards of choices that may be many (districts, categories, subscriptions):
shown a page at a time, so a city with hundreds of districts stays under Telegram's 100
buttons a message ("reply markup is too long") and readable on a phone."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton

# Choice buttons a page: a screenful, far below Telegram's 100 (navigation and the finishing
# buttons come on top).
PAGE_SIZE = 24


def page_rows(
    choices: Sequence[tuple[str, CallbackData]],
    page: int,
    to_page: Callable[[int], CallbackData],
    *,
    width: int = 2,
    first_alone: bool = False,
    size: int = PAGE_SIZE,
) -> list[list[InlineKeyboardButton]]:
    """The rows of page `page` (clamped to the pages there are) of `choices`, `width` to a
    row, and a row of arrows to the pages before and after when there is more than one;
    `to_page(n)` is the data that shows page n. `first_alone` keeps the first choice on its
    own row (e.g. "All districts")."""
    pages = max(1, -(-len(choices) // size))
    page = min(max(page, 0), pages - 1)
    shown = choices[page * size : (page + 1) * size]
    buttons = [InlineKeyboardButton(text=t, callback_data=d.pack()) for t, d in shown]
    rows: list[list[InlineKeyboardButton]] = []
    if first_alone and page == 0 and buttons:
        rows.append([buttons.pop(0)])
    rows += [buttons[i : i + width] for i in range(0, len(buttons), width)]
    if pages > 1:
        # Each arrow names the page it shows ("◀ 1/5", "3/5 ▶"); no button re-shows this page
        # (an edit to the same content is an error on Telegram).
        before, after = (page - 1) % pages, (page + 1) % pages
        arrows = [
            InlineKeyboardButton(
                text=f"◀ {before + 1}/{pages}", callback_data=to_page(before).pack()
            )
        ]
        if after != before:  # two pages: one button to the other
            arrows.append(
                InlineKeyboardButton(
                    text=f"{after + 1}/{pages} ▶", callback_data=to_page(after).pack()
                )
            )
        rows.append(arrows)
    return rows

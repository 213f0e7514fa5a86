"""Callback data shared by several routers (typed, so forged data fails to parse)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class HumanCb(CallbackData, prefix="human"):
    """ "Talk to an officer", offered by the FAQ when it cannot help."""

    query_id: int = 0


class PickCb(CallbackData, prefix="pick"):
    """A "Did you mean…" suggestion."""

    query_id: int
    entry_id: str


class FeedbackCb(CallbackData, prefix="fb"):
    """👍 / 👎 under an answer."""

    query_id: int
    up: bool

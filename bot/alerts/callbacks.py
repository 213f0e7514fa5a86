"""Callback data of the alert buttons that both the broadcast (its final progress message)
and the staff's handlers use: defined with the feature, so the service never imports a
handler."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class AlertActCb(CallbackData, prefix="aact"):
    """Buttons under a finished broadcast and the cancel confirmation."""

    action: str  # update | cancel | cancel_yes | cancel_no
    alert_id: int

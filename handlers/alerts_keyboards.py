"""The buttons of the alert staff's handlers (`handlers.alerts_staff`): the wizard's choices,
approval and the cancel confirmation, each keyboard beside the callback data its buttons carry."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.alerts import service
from bot.alerts.callbacks import AlertActCb
from bot.alerts.catalog import ALL_DISTRICTS, Catalog
from bot.i18n import Locales
from handlers.keyboards import page_rows

EXPIRY_HOURS = (1, 6, 24, 72)


class WizCb(CallbackData, prefix="wiz"):
    """A wizard button; value is checked against content and the current step."""

    action: str  # cat | cpage | dist | dpage | done | sev | urg | exp | now | send | cancel
    value: str = ""
    page: int = 0  # of the category or district list the button belongs to (or shows)


class ApproveCb(CallbackData, prefix="appr"):
    """Approve or reject an alert waiting for a second staff member."""

    alert_id: int
    ok: bool


def grid(buttons: Sequence[tuple[str, CallbackData]], width: int = 2) -> InlineKeyboardMarkup:
    """Buttons `width` to a row."""
    kb = InlineKeyboardBuilder()
    for text, data in buttons:
        kb.button(text=text, callback_data=data)
    kb.adjust(width)
    return kb.as_markup()


def categories(catalog: Catalog, lang: str, page: int = 0) -> InlineKeyboardMarkup:
    """The first question of the wizard, a page of categories at a time."""
    choices = [(c.name(lang), WizCb(action="cat", value=c.id)) for c in catalog.categories.values()]
    rows = page_rows(choices, page, lambda n: WizCb(action="cpage", page=n))
    return InlineKeyboardMarkup(inline_keyboard=rows)


def districts(
    catalog: Catalog, locales: Locales, lang: str, selected: list[str], page: int = 0
) -> InlineKeyboardMarkup:
    """All districts and each district (the selected ones ticked), a page at a time, and Done."""
    options = [(ALL_DISTRICTS, locales.t(lang, "wiz_all"))]
    options += [(d.id, d.name(lang)) for d in catalog.districts.values()]
    choices = [
        (("✅ " if value in selected else "") + name, WizCb(action="dist", value=value, page=page))
        for value, name in options
    ]
    rows = page_rows(choices, page, lambda n: WizCb(action="dpage", page=n), first_alone=True)
    done = WizCb(action="done").pack()
    rows.append([InlineKeyboardButton(text=locales.t(lang, "wiz_done"), callback_data=done)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def severities() -> InlineKeyboardMarkup:
    """The CAP severities."""
    return grid([(s, WizCb(action="sev", value=s)) for s in service.SEVERITIES], 4)


def urgencies() -> InlineKeyboardMarkup:
    """The CAP urgencies that make sense for a new alert (not Unknown)."""
    return grid([(u, WizCb(action="urg", value=u)) for u in service.URGENCIES[:4]], 4)


def expiries(locales: Locales, lang: str) -> InlineKeyboardMarkup:
    """The usual lifetimes of an alert, and none."""
    buttons = [
        (
            locales.t(lang, "wiz_hours", n=h) if h < 48 else locales.t(lang, "wiz_days", n=h // 24),
            WizCb(action="exp", value=str(h)),
        )
        for h in EXPIRY_HOURS
    ]
    buttons.append((locales.t(lang, "wiz_none_expiry"), WizCb(action="exp", value="0")))
    return grid(buttons, 4)


def send_now(locales: Locales, lang: str) -> InlineKeyboardMarkup:
    """Send as soon as possible (a later time is typed)."""
    return grid([(locales.t(lang, "wiz_send_now"), WizCb(action="now"))])


def send_or_cancel(locales: Locales, lang: str, alert_id: int) -> InlineKeyboardMarkup:
    """Under the preview: send the draft or discard it."""
    return grid(
        [
            (locales.t(lang, "wiz_send"), WizCb(action="send", value=str(alert_id))),
            (locales.t(lang, "wiz_cancel"), WizCb(action="cancel", value=str(alert_id))),
        ]
    )


def approve_or_reject(locales: Locales, lang: str, alert_id: int) -> InlineKeyboardMarkup:
    """Under an alert waiting for a second staff member."""
    return grid(
        [
            (locales.t(lang, "approval_approve"), ApproveCb(alert_id=alert_id, ok=True)),
            (locales.t(lang, "approval_reject"), ApproveCb(alert_id=alert_id, ok=False)),
        ]
    )


def confirm_cancel(locales: Locales, lang: str, alert_id: int) -> InlineKeyboardMarkup:
    """Whether to send a CANCELLED notice of a sent alert."""
    return grid(
        [
            (locales.t(lang, "cancel_yes"), AlertActCb(action="cancel_yes", alert_id=alert_id)),
            (locales.t(lang, "cancel_no"), AlertActCb(action="cancel_no", alert_id=alert_id)),
        ]
    )

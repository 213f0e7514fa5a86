"""How the alert handlers show things: the `AlertsView` (texts in the reader's language, the
catalogue's names, alerts as citizens get them; the citizens' `handlers.subscriptions`), the
`StaffView` (that, plus the alert's languages and times in the bureau's zone; the staff's
`handlers.alerts_staff`), the filter that gives a router's handlers one, and the staff's
keyboards, each beside the callback data its buttons carry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiogram.filters import Filter
from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.alerts import service
from bot.alerts.callbacks import AlertActCb
from bot.alerts.catalog import ALL_DISTRICTS, Catalog
from bot.alerts.render import RenderedAlert, format_time, utc_offset
from bot.config import Settings
from bot.db.models import Alert
from bot.i18n import Locales
from handlers.keyboards import page_rows

EXPIRY_HOURS = (1, 6, 24, 72)


@dataclass(frozen=True)
class AlertsView:
    """What every answer about alerts is made with: the settings, the content catalogue and
    the interface texts in the reader's language."""

    settings: Settings
    catalog: Catalog
    locales: Locales
    lang: str

    def t(self, key: str, **values: Any) -> str:
        """An interface text in the reader's language."""
        return self.locales.t(self.lang, key, **values)

    def names(self, category: str, district: str) -> dict[str, str]:
        """A category's and a district's names ("All districts" for every district)."""
        every = self.t("sub_all_districts")
        return {
            "category": self.catalog.category_name(category, self.lang),
            "district": self.catalog.district_name(district, self.lang, every),
        }

    def render(self, alert: Alert, lang: str | None = None) -> RenderedAlert:
        """Exactly what a citizen reading lang (by default the reader's) receives for this
        alert."""
        bot, shown = self.settings.bot, self.lang if lang is None else lang
        return service.render_for(alert, shown, self.catalog, bot.default_language, tz=bot.zone)


class StaffView(AlertsView):
    """What every answer to a staff member is made with (each handler's `desk`): their alerts
    view, the languages an alert is written in, and times in the bureau's zone."""

    @property
    def langs(self) -> list[str]:
        """The languages an alert is written in, the default first."""
        default = self.settings.bot.default_language
        return [default, *[lang for lang in self.settings.bot.languages if lang != default]]

    @property
    def zone(self) -> str:
        """The bureau's zone as staff read it: Asia/Shanghai, UTC+08:00."""
        bot = self.settings.bot
        return f"{bot.timezone}, {utc_offset(datetime.now(bot.zone))}"

    def time(self, value: datetime | None) -> str | None:
        """A time as staff read it, in the bureau's zone: 2026-06-01 18:00 (UTC+08:00)."""
        return format_time(value, self.settings.bot.zone) if value else None


class GiveView(Filter):
    """A router's last filter: it always passes, and gives each of the router's handlers
    `name`, a view of `kind` in the sender's language (aiogram hands a filter the services
    by name, as it does a handler)."""

    def __init__(self, name: str, kind: type[AlertsView]) -> None:
        self.name = name
        self.kind = kind

    async def __call__(
        self, _event: object, settings: Settings, catalog: Catalog, locales: Locales, lang: str
    ) -> dict[str, AlertsView]:
        return {self.name: self.kind(settings, catalog, locales, lang)}


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


def categories(desk: StaffView, page: int = 0) -> InlineKeyboardMarkup:
    """The first question of the wizard, a page of categories at a time."""
    choices = [
        (c.name(desk.lang), WizCb(action="cat", value=c.id))
        for c in desk.catalog.categories.values()
    ]
    rows = page_rows(choices, page, lambda n: WizCb(action="cpage", page=n))
    return InlineKeyboardMarkup(inline_keyboard=rows)


def districts(desk: StaffView, selected: list[str], page: int = 0) -> InlineKeyboardMarkup:
    """All districts and each district (the selected ones ticked), a page at a time, and Done."""
    options = [(ALL_DISTRICTS, desk.t("wiz_all"))]
    options += [(d.id, d.name(desk.lang)) for d in desk.catalog.districts.values()]
    choices = [
        (("✅ " if value in selected else "") + name, WizCb(action="dist", value=value, page=page))
        for value, name in options
    ]
    rows = page_rows(choices, page, lambda n: WizCb(action="dpage", page=n), first_alone=True)
    done = WizCb(action="done").pack()
    rows.append([InlineKeyboardButton(text=desk.t("wiz_done"), callback_data=done)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def severities() -> InlineKeyboardMarkup:
    """The CAP severities."""
    return grid([(s, WizCb(action="sev", value=s)) for s in service.SEVERITIES], 4)


def urgencies() -> InlineKeyboardMarkup:
    """The CAP urgencies that make sense for a new alert (not Unknown)."""
    return grid([(u, WizCb(action="urg", value=u)) for u in service.URGENCIES[:4]], 4)


def expiries(desk: StaffView) -> InlineKeyboardMarkup:
    """The usual lifetimes of an alert, and none."""
    buttons = [
        (
            desk.t("wiz_hours", n=h) if h < 48 else desk.t("wiz_days", n=h // 24),
            WizCb(action="exp", value=str(h)),
        )
        for h in EXPIRY_HOURS
    ]
    buttons.append((desk.t("wiz_none_expiry"), WizCb(action="exp", value="0")))
    return grid(buttons, 4)


def send_now(desk: StaffView) -> InlineKeyboardMarkup:
    """Send as soon as possible (a later time is typed)."""
    return grid([(desk.t("wiz_send_now"), WizCb(action="now"))])


def send_or_cancel(desk: StaffView, alert_id: int) -> InlineKeyboardMarkup:
    """Under the preview: send the draft or discard it."""
    return grid(
        [
            (desk.t("wiz_send"), WizCb(action="send", value=str(alert_id))),
            (desk.t("wiz_cancel"), WizCb(action="cancel", value=str(alert_id))),
        ]
    )


def approve_or_reject(locales: Locales, lang: str, alert_id: int) -> InlineKeyboardMarkup:
    """Under an alert waiting for a second staff member (who may read another language)."""
    return grid(
        [
            (locales.t(lang, "approval_approve"), ApproveCb(alert_id=alert_id, ok=True)),
            (locales.t(lang, "approval_reject"), ApproveCb(alert_id=alert_id, ok=False)),
        ]
    )


def confirm_cancel(desk: StaffView, alert_id: int) -> InlineKeyboardMarkup:
    """Whether to send a CANCELLED notice of a sent alert."""
    return grid(
        [
            (desk.t("cancel_yes"), AlertActCb(action="cancel_yes", alert_id=alert_id)),
            (desk.t("cancel_no"), AlertActCb(action="cancel_no", alert_id=alert_id)),
        ]
    )

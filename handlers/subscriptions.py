"""Citizens' alert commands: /subscribe, /unsubscribe, /mysubscriptions, /alerts, deep links."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.alerts import service
from bot.alerts.catalog import ALL_DISTRICTS, Catalog
from bot.config import Settings
from bot.db.models import Citizen, Subscription
from bot.i18n import Locales
from handlers.filters import PRIVATE, PRIVATE_CALLBACK
from handlers.keyboards import page_rows


class SubCb(CallbackData, prefix="sub"):
    """The subscription picker: open a category, toggle a district, go back, finish."""

    action: str  # cat | toggle | back | done
    category: str = ""
    district: str = ""
    page: int = 0  # of the list the button belongs to (or shows, for cat and back)


class UnsubCb(CallbackData, prefix="unsub"):
    """Remove one subscription (id) or all (0)."""

    sub_id: int


class UnsubPageCb(CallbackData, prefix="unsubp"):
    """Show another page of the /unsubscribe list."""

    page: int


def make_router() -> Router:
    """A new router with this module's handlers, in the order they are tried."""
    router = Router(name=__name__)
    router.message.filter(PRIVATE)
    router.callback_query.filter(PRIVATE_CALLBACK)
    router.message.register(
        deep_link, CommandStart(deep_link=True, magic=F.args.startswith("sub_"))
    )
    router.message.register(subscribe, Command("subscribe"))
    router.callback_query.register(picker, SubCb.filter())
    router.message.register(my_subscriptions, Command("mysubscriptions"))
    router.message.register(unsubscribe, Command("unsubscribe"))
    router.callback_query.register(unsubscribe_page, UnsubPageCb.filter())
    router.callback_query.register(unsubscribe_pressed, UnsubCb.filter())
    router.message.register(active_alerts, Command("alerts"))
    return router


async def _subscribed(session: AsyncSession, citizen_id: int) -> set[tuple[str, str]]:
    return {(s.category, s.district) for s in await service.subscriptions_of(session, citizen_id)}


def _categories_kb(
    catalog: Catalog, lang: str, subs: set[tuple[str, str]], page: int = 0
) -> InlineKeyboardMarkup:
    mine = {c for c, _ in subs}
    choices = [
        (("✅ " if cat.id in mine else "") + cat.name(lang), SubCb(action="cat", category=cat.id))
        for cat in catalog.categories.values()
    ]
    rows = page_rows(choices, page, lambda n: SubCb(action="back", page=n))
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _districts_kb(
    catalog: Catalog,
    locales: Locales,
    lang: str,
    category: str,
    subs: set[tuple[str, str]],
    page: int = 0,
) -> InlineKeyboardMarkup:
    options = [(ALL_DISTRICTS, locales.t(lang, "sub_all_districts"))]
    options += [(d.id, d.name(lang)) for d in catalog.districts.values()]
    choices = [
        (
            ("✅ " if (category, district) in subs else "") + name,
            SubCb(action="toggle", category=category, district=district, page=page),
        )
        for district, name in options
    ]
    rows = page_rows(
        choices, page, lambda n: SubCb(action="cat", category=category, page=n), first_alone=True
    )
    rows.append(
        [
            InlineKeyboardButton(
                text=locales.t(lang, "sub_back"), callback_data=SubCb(action="back").pack()
            ),
            InlineKeyboardButton(
                text=locales.t(lang, "sub_done"), callback_data=SubCb(action="done").pack()
            ),
        ]
    )
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def deep_link(
    message: Message,
    command: CommandObject,
    citizen: Citizen | None,
    session: AsyncSession,
    catalog: Catalog,
    locales: Locales,
    lang: str,
) -> None:
    """/start sub_<category> or sub_<category>_<district>: subscribe in one tap."""
    payload = (command.args or "")[len("sub_") :]
    category, _, district = payload.partition("_")
    district = district or ALL_DISTRICTS
    valid = category in catalog.categories and (
        district == ALL_DISTRICTS or district in catalog.districts
    )
    if citizen is None or not valid:
        await message.answer(locales.t(lang, "sub_deeplink_bad"))
        return
    added = await service.subscribe(session, citizen.id, category, district)
    key = "sub_deeplink_ok" if added else "sub_deeplink_already"
    await message.answer(
        locales.t(
            lang,
            key,
            category=catalog.category_name(category, lang),
            district=catalog.district_name(district, lang, locales.t(lang, "sub_all_districts")),
        )
    )


async def subscribe(
    message: Message,
    citizen: Citizen | None,
    session: AsyncSession,
    catalog: Catalog,
    locales: Locales,
    lang: str,
) -> None:
    """/subscribe: the category picker."""
    if citizen is None:
        return
    subs = await _subscribed(session, citizen.id)
    await message.answer(
        locales.t(lang, "sub_choose_category"), reply_markup=_categories_kb(catalog, lang, subs)
    )


async def picker(
    query: CallbackQuery,
    callback_data: SubCb,
    citizen: Citizen | None,
    session: AsyncSession,
    catalog: Catalog,
    locales: Locales,
    lang: str,
) -> None:
    """A button of the subscription picker."""
    message = query.message
    category, district = callback_data.category, callback_data.district
    forged = callback_data.action in {"cat", "toggle"} and category not in catalog.categories
    forged |= callback_data.action == "toggle" and (
        district != ALL_DISTRICTS and district not in catalog.districts
    )
    if citizen is None or not isinstance(message, Message) or forged:
        await query.answer(locales.t(lang, "button_expired"), show_alert=True)
        return
    subs = await _subscribed(session, citizen.id)
    if callback_data.action == "done":
        await query.answer()
        await message.edit_text(locales.t(lang, "sub_finished"))
        return
    if callback_data.action == "back":
        await query.answer()
        await message.edit_text(
            locales.t(lang, "sub_choose_category"),
            reply_markup=_categories_kb(catalog, lang, subs, callback_data.page),
        )
        return
    names: dict[str, Any] = {
        "category": catalog.category_name(category, lang),
        "district": catalog.district_name(district, lang, locales.t(lang, "sub_all_districts")),
    }
    if callback_data.action == "toggle":
        if await service.toggle_subscription(session, citizen.id, category, district):
            subs.add((category, district))
            await query.answer(locales.t(lang, "sub_added", **names))
        else:
            subs.discard((category, district))
            await query.answer(locales.t(lang, "sub_removed", **names))
    else:
        await query.answer()
    await message.edit_text(
        locales.t(lang, "sub_choose_district", category=names["category"]),
        reply_markup=_districts_kb(catalog, locales, lang, category, subs, callback_data.page),
    )


def _sub_label(catalog: Catalog, locales: Locales, lang: str, category: str, district: str) -> str:
    all_label = locales.t(lang, "sub_all_districts")
    return (
        f"{catalog.category_name(category, lang)} · "
        f"{catalog.district_name(district, lang, all_label)}"
    )


async def my_subscriptions(
    message: Message,
    citizen: Citizen | None,
    session: AsyncSession,
    catalog: Catalog,
    locales: Locales,
    lang: str,
) -> None:
    """/mysubscriptions: what this citizen receives."""
    if citizen is None:
        return
    subs = await service.subscriptions_of(session, citizen.id)
    if not subs:
        await message.answer(locales.t(lang, "sub_none"))
        return
    lines = "\n".join(
        "• " + _sub_label(catalog, locales, lang, s.category, s.district) for s in subs
    )
    # The list is built from content names; escape through the locale's placeholder.
    await message.answer(locales.t(lang, "sub_list", items=lines))


async def unsubscribe(
    message: Message,
    citizen: Citizen | None,
    session: AsyncSession,
    catalog: Catalog,
    locales: Locales,
    lang: str,
) -> None:
    """/unsubscribe: one button per subscription plus "everything"."""
    if citizen is None:
        return
    subs = await service.subscriptions_of(session, citizen.id)
    if not subs:
        await message.answer(locales.t(lang, "sub_none"))
        return
    await message.answer(
        locales.t(lang, "unsub_choose"), reply_markup=_unsubscribe_kb(catalog, locales, lang, subs)
    )


def _unsubscribe_kb(
    catalog: Catalog, locales: Locales, lang: str, subs: Sequence[Subscription], page: int = 0
) -> InlineKeyboardMarkup:
    choices = [
        ("❌ " + _sub_label(catalog, locales, lang, s.category, s.district), UnsubCb(sub_id=s.id))
        for s in subs
    ]
    rows = page_rows(choices, page, lambda n: UnsubPageCb(page=n), width=1)
    everything = UnsubCb(sub_id=0).pack()
    rows.append([InlineKeyboardButton(text=locales.t(lang, "unsub_all"), callback_data=everything)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def unsubscribe_page(
    query: CallbackQuery,
    callback_data: UnsubPageCb,
    citizen: Citizen | None,
    session: AsyncSession,
    catalog: Catalog,
    locales: Locales,
    lang: str,
) -> None:
    """Another page of the /unsubscribe list."""
    if citizen is None or not isinstance(query.message, Message):
        await query.answer(locales.t(lang, "button_expired"), show_alert=True)
        return
    subs = await service.subscriptions_of(session, citizen.id)
    await query.answer()
    if not subs:
        await query.message.edit_text(locales.t(lang, "sub_none"))
        return
    await query.message.edit_text(
        locales.t(lang, "unsub_choose"),
        reply_markup=_unsubscribe_kb(catalog, locales, lang, subs, callback_data.page),
    )


async def unsubscribe_pressed(
    query: CallbackQuery,
    callback_data: UnsubCb,
    citizen: Citizen | None,
    session: AsyncSession,
    locales: Locales,
    lang: str,
) -> None:
    """Removes a subscription; only the presser's own rows can match."""
    if citizen is None or callback_data.sub_id < 0:
        await query.answer(locales.t(lang, "button_expired"), show_alert=True)
        return
    sub_id = callback_data.sub_id or None
    removed = await service.unsubscribe(session, citizen.id, sub_id)
    if not removed and sub_id is not None:
        await query.answer(locales.t(lang, "button_expired"), show_alert=True)
        return
    await query.answer()
    if isinstance(query.message, Message):
        key = "unsub_done_all" if sub_id is None else "unsub_done_one"
        await query.message.edit_text(locales.t(lang, key))


async def active_alerts(
    message: Message,
    session: AsyncSession,
    catalog: Catalog,
    settings: Settings,
    locales: Locales,
    lang: str,
) -> None:
    """/alerts: active, unexpired alerts, newest first (the latest update of each)."""
    alerts = await service.active_alerts(session, limit=5)
    if not alerts:
        await message.answer(locales.t(lang, "alerts_none"))
        return
    await message.answer(locales.t(lang, "alerts_header", count=len(alerts)))
    for alert in alerts:
        shown = await service.latest_update(session, alert.id) or alert
        rendered = service.render_for(
            shown, lang, catalog, settings.bot.default_language, tz=settings.bot.zone
        )
        await message.answer(rendered.text, disable_notification=True)

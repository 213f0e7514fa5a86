"""Citizens' alert commands: /subscribe, /unsubscribe, /mysubscriptions, /alerts, deep links."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.alerts import service
from bot.alerts.catalog import ALL_DISTRICTS
from bot.db.models import Citizen, Subscription
from handlers.alerts_view import AlertsView, GiveView
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
    # Every handler here gets `view`: the texts, names and alerts in the citizen's language.
    router.message.filter(PRIVATE, GiveView("view", AlertsView))
    router.callback_query.filter(PRIVATE_CALLBACK, GiveView("view", AlertsView))
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


async def _expired(query: CallbackQuery, view: AlertsView) -> None:
    await query.answer(view.t("button_expired"), show_alert=True)


def _categories_kb(
    view: AlertsView, subs: set[tuple[str, str]], page: int = 0
) -> InlineKeyboardMarkup:
    mine = {c for c, _ in subs}
    choices = [
        (
            ("✅ " if cat.id in mine else "") + cat.name(view.lang),
            SubCb(action="cat", category=cat.id),
        )
        for cat in view.catalog.categories.values()
    ]
    rows = page_rows(choices, page, lambda n: SubCb(action="back", page=n))
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _districts_kb(
    view: AlertsView, category: str, subs: set[tuple[str, str]], page: int = 0
) -> InlineKeyboardMarkup:
    options = [(ALL_DISTRICTS, view.t("sub_all_districts"))]
    options += [(d.id, d.name(view.lang)) for d in view.catalog.districts.values()]
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
                text=view.t("sub_back"), callback_data=SubCb(action="back").pack()
            ),
            InlineKeyboardButton(
                text=view.t("sub_done"), callback_data=SubCb(action="done").pack()
            ),
        ]
    )
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def deep_link(
    message: Message,
    command: CommandObject,
    citizen: Citizen | None,
    session: AsyncSession,
    view: AlertsView,
) -> None:
    """/start sub_<category> or sub_<category>_<district>: subscribe in one tap."""
    payload = (command.args or "")[len("sub_") :]
    category, _, district = payload.partition("_")
    district = district or ALL_DISTRICTS
    catalog = view.catalog
    valid = category in catalog.categories and (
        district == ALL_DISTRICTS or district in catalog.districts
    )
    if citizen is None or not valid:
        await message.answer(view.t("sub_deeplink_bad"))
        return
    added = await service.subscribe(session, citizen.id, category, district)
    key = "sub_deeplink_ok" if added else "sub_deeplink_already"
    await message.answer(view.t(key, **view.names(category, district)))


async def subscribe(
    message: Message, citizen: Citizen | None, session: AsyncSession, view: AlertsView
) -> None:
    """/subscribe: the category picker."""
    if citizen is None:
        return
    subs = await _subscribed(session, citizen.id)
    await message.answer(view.t("sub_choose_category"), reply_markup=_categories_kb(view, subs))


async def picker(
    query: CallbackQuery,
    callback_data: SubCb,
    citizen: Citizen | None,
    session: AsyncSession,
    view: AlertsView,
) -> None:
    """A button of the subscription picker."""
    message, catalog = query.message, view.catalog
    category, district = callback_data.category, callback_data.district
    forged = callback_data.action in {"cat", "toggle"} and category not in catalog.categories
    forged |= callback_data.action == "toggle" and (
        district != ALL_DISTRICTS and district not in catalog.districts
    )
    if citizen is None or not isinstance(message, Message) or forged:
        await _expired(query, view)
        return
    subs = await _subscribed(session, citizen.id)
    if callback_data.action == "done":
        await query.answer()
        await message.edit_text(view.t("sub_finished"))
        return
    if callback_data.action == "back":
        await query.answer()
        await message.edit_text(
            view.t("sub_choose_category"),
            reply_markup=_categories_kb(view, subs, callback_data.page),
        )
        return
    names = view.names(category, district)
    if callback_data.action == "toggle":
        if await service.toggle_subscription(session, citizen.id, category, district):
            subs.add((category, district))
            await query.answer(view.t("sub_added", **names))
        else:
            subs.discard((category, district))
            await query.answer(view.t("sub_removed", **names))
    else:
        await query.answer()
    await message.edit_text(
        view.t("sub_choose_district", category=names["category"]),
        reply_markup=_districts_kb(view, category, subs, callback_data.page),
    )


def _sub_label(view: AlertsView, category: str, district: str) -> str:
    names = view.names(category, district)
    return f"{names['category']} · {names['district']}"


async def _listed(
    message: Message, citizen: Citizen | None, session: AsyncSession, view: AlertsView
) -> Sequence[Subscription]:
    """The sender's subscriptions; with none they are told so (an unknown sender is not
    answered)."""
    if citizen is None:
        return ()
    subs = await service.subscriptions_of(session, citizen.id)
    if not subs:
        await message.answer(view.t("sub_none"))
    return subs


async def my_subscriptions(
    message: Message, citizen: Citizen | None, session: AsyncSession, view: AlertsView
) -> None:
    """/mysubscriptions: what this citizen receives."""
    subs = await _listed(message, citizen, session, view)
    if subs:
        lines = "\n".join("• " + _sub_label(view, s.category, s.district) for s in subs)
        # The list is built from content names; escape through the locale's placeholder.
        await message.answer(view.t("sub_list", items=lines))


async def unsubscribe(
    message: Message, citizen: Citizen | None, session: AsyncSession, view: AlertsView
) -> None:
    """/unsubscribe: one button per subscription plus "everything"."""
    subs = await _listed(message, citizen, session, view)
    if subs:
        await message.answer(view.t("unsub_choose"), reply_markup=_unsubscribe_kb(view, subs))


def _unsubscribe_kb(
    view: AlertsView, subs: Sequence[Subscription], page: int = 0
) -> InlineKeyboardMarkup:
    choices = [
        ("❌ " + _sub_label(view, s.category, s.district), UnsubCb(sub_id=s.id)) for s in subs
    ]
    rows = page_rows(choices, page, lambda n: UnsubPageCb(page=n), width=1)
    everything = UnsubCb(sub_id=0).pack()
    rows.append([InlineKeyboardButton(text=view.t("unsub_all"), callback_data=everything)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def unsubscribe_page(
    query: CallbackQuery,
    callback_data: UnsubPageCb,
    citizen: Citizen | None,
    session: AsyncSession,
    view: AlertsView,
) -> None:
    """Another page of the /unsubscribe list."""
    if citizen is None or not isinstance(query.message, Message):
        await _expired(query, view)
        return
    subs = await service.subscriptions_of(session, citizen.id)
    await query.answer()
    if not subs:
        await query.message.edit_text(view.t("sub_none"))
        return
    await query.message.edit_text(
        view.t("unsub_choose"),
        reply_markup=_unsubscribe_kb(view, subs, callback_data.page),
    )


async def unsubscribe_pressed(
    query: CallbackQuery,
    callback_data: UnsubCb,
    citizen: Citizen | None,
    session: AsyncSession,
    view: AlertsView,
) -> None:
    """Removes a subscription; only the presser's own rows can match."""
    if citizen is None or callback_data.sub_id < 0:
        await _expired(query, view)
        return
    sub_id = callback_data.sub_id or None
    removed = await service.unsubscribe(session, citizen.id, sub_id)
    if not removed and sub_id is not None:
        await _expired(query, view)
        return
    await query.answer()
    if isinstance(query.message, Message):
        key = "unsub_done_all" if sub_id is None else "unsub_done_one"
        await query.message.edit_text(view.t(key))


async def active_alerts(message: Message, session: AsyncSession, view: AlertsView) -> None:
    """/alerts: active, unexpired alerts, newest first (the latest update of each)."""
    alerts = await service.active_alerts(session, limit=5)
    if not alerts:
        await message.answer(view.t("alerts_none"))
        return
    await message.answer(view.t("alerts_header", count=len(alerts)))
    for alert in alerts:
        shown = await service.latest_update(session, alert.id) or alert
        await message.answer(view.render(shown).text, disable_notification=True)

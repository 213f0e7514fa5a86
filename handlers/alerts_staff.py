"""Communications staff: the /alert wizard, approval, /stop, /resume, update and cancel.

Only staff and admins reach this router (a filter on the router); anyone else's /alert falls
through to the citizen handlers. Wizard answers live in the FSM (Redis or the database), so a
restart mid-wizard continues where the staff member was. The rules and the queries are in
`bot.alerts.staff` and `bot.alerts.service`: a handler reads the update, calls them and says
what they return.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any, NamedTuple

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.alerts import service, staff
from bot.alerts.callbacks import AlertActCb
from bot.alerts.catalog import ALL_DISTRICTS, Catalog
from bot.alerts.wiring import alert_subject
from bot.db.models import Alert, AlertKind
from handlers import alerts_view as view
from handlers.alerts_view import ApproveCb, GiveView, StaffView, WizCb
from handlers.filters import PRIVATE, PRIVATE_CALLBACK, alert_staff

LIMITS = {"headline": 200, "description": 2000, "instruction": 800}
SKIP = "/skip"


class Wizard(StatesGroup):
    category = State()
    districts = State()
    severity = State()
    urgency = State()
    headline = State()
    description = State()
    instruction = State()
    expiry = State()
    schedule = State()
    confirm = State()
    update_text = State()


class Step(NamedTuple):
    """A question of the wizard: its text in the catalogue, and the buttons that answer it
    (None: a text answers it)."""

    key: str
    buttons: Callable[[StaffView], InlineKeyboardMarkup] | None = None
    in_place: bool = False  # after a button, it takes the place of the question answered


# What each step asks, in order. The texts with buttons take what they name of "selected" (no
# district yet) and "zone"; the texts to type are asked language by language (`_text_question`).
STEPS: dict[State, Step] = {
    Wizard.category: Step("wiz_start", view.categories),
    Wizard.districts: Step("wiz_districts", lambda desk: view.districts(desk, []), True),
    Wizard.severity: Step("wiz_severity", lambda _: view.severities(), True),
    Wizard.urgency: Step("wiz_urgency", lambda _: view.urgencies(), True),
    Wizard.headline: Step("wiz_headline"),
    Wizard.description: Step("wiz_description"),
    Wizard.instruction: Step("wiz_instruction"),
    Wizard.expiry: Step("wiz_expiry", view.expiries),
    Wizard.schedule: Step("wiz_schedule", view.send_now),
}
# The text that follows each (after the instruction: the next language's headline, or expiry).
NEXT_TEXT = {"headline": Wizard.description, "description": Wizard.instruction}


class Choice(NamedTuple):
    """A button that answers a step: the values the step offers, where the wizard's answers
    keep it (as `parse` reads it), and the step that follows."""

    step: State
    values: Callable[[Catalog], Collection[str]]
    field: str
    then: State
    parse: Callable[[str], Any] = str


def _expiry(hours: str) -> str | None:
    expires = service.parse_when(f"{hours}h") if int(hours) else None
    return expires.isoformat() if expires else None


EXPIRIES = {"0", *map(str, view.EXPIRY_HOURS)}  # 0: none
CHOICES: dict[str, Choice] = {  # by WizCb.action
    "cat": Choice(Wizard.category, lambda c: c.categories, "category", Wizard.districts),
    "sev": Choice(Wizard.severity, lambda _: service.SEVERITIES, "severity", Wizard.urgency),
    "urg": Choice(Wizard.urgency, lambda _: service.URGENCIES, "urgency", Wizard.headline),
    "exp": Choice(Wizard.expiry, lambda _: EXPIRIES, "expires", Wizard.schedule, _expiry),
}


def make_router() -> Router:
    """A new router with this module's handlers, in the order they are tried."""
    router = Router(name=__name__)
    # Every handler here gets `desk`: the staff member's texts, times and renderings.
    router.message.filter(PRIVATE, alert_staff, GiveView("desk", StaffView))
    router.callback_query.filter(PRIVATE_CALLBACK, alert_staff, GiveView("desk", StaffView))
    # Start and cancel.
    router.message.register(start_wizard, Command("alert"))
    router.callback_query.register(
        category_page, WizCb.filter(F.action == "cpage"), Wizard.category
    )
    router.message.register(cancel_wizard, Command("cancel"), ~StateFilter(None))
    # Answers.
    for action, choice in CHOICES.items():
        router.callback_query.register(chose, WizCb.filter(F.action == action), choice.step)
    districts = WizCb.filter(F.action.in_({"dist", "dpage", "done"}))
    router.callback_query.register(chose_district, districts, Wizard.districts)
    texts = StateFilter(Wizard.headline, Wizard.description, Wizard.instruction)
    router.message.register(got_text, texts)
    router.message.register(typed_expiry, Wizard.expiry)
    router.callback_query.register(chose_now, WizCb.filter(F.action == "now"), Wizard.schedule)
    router.message.register(typed_schedule, Wizard.schedule)
    buttons = (Wizard.category, Wizard.districts, Wizard.severity, Wizard.urgency, Wizard.confirm)
    router.message.register(expected_button, StateFilter(*buttons))
    # Preview and send; approval.
    router.callback_query.register(
        confirm, WizCb.filter(F.action.in_({"send", "cancel"})), Wizard.confirm
    )
    router.callback_query.register(approval, ApproveCb.filter())
    router.message.register(pending, Command("pending"))
    # Stop and resume; update and cancel.
    router.message.register(stop_or_resume, Command("stop", "resume"))
    router.message.register(update_command, Command("update_alert"))
    router.message.register(cancel_command, Command("cancel_alert"))
    router.callback_query.register(alert_action, AlertActCb.filter())
    router.message.register(update_text, Wizard.update_text)
    return router


async def _expired(query: CallbackQuery, desk: StaffView) -> None:
    await query.answer(desk.t("button_expired"), show_alert=True)


async def _advance(
    message: Message,
    state: FSMContext,
    to: State,
    desk: StaffView,
    query: CallbackQuery | None = None,
    **answers: Any,
) -> None:
    """Store the answers, move on to step `to` and ask its question. After a button (query)
    the next question with buttons takes the place of the one answered; any other comes as a
    new message, and the answered buttons go."""
    if answers:
        await state.update_data(**answers)
    await state.set_state(to)
    if query is not None:
        await query.answer()
    step = STEPS[to]
    markup: InlineKeyboardMarkup | None = None
    if step.buttons is None:
        text = _text_question(to, step, await state.get_data(), desk)
    else:
        text, markup = desk.t(step.key, selected="–", zone=desk.zone), step.buttons(desk)
        if query is not None and step.in_place:
            await message.edit_text(text, reply_markup=markup)
            return
    if query is not None:
        await message.edit_reply_markup(reply_markup=None)
    await message.answer(text, reply_markup=markup)


def _text_question(to: State, step: Step, data: dict[str, Any], desk: StaffView) -> str:
    """Ask for a text in the language the wizard is at: the default language first, then
    each other one, whose headline may be skipped (leaving that language out)."""
    index = int(data.get("lang_index", 0))
    key = "wiz_headline_optional" if to == Wizard.headline and index > 0 else step.key
    return desk.t(
        key,
        language=desk.locales.language_name(desk.langs[index]),
        limit=LIMITS[str(to.state).split(":")[-1]],
        default=desk.locales.language_name(desk.langs[0]),
    )


async def _read_text(message: Message, limit: int, may_skip: bool, desk: StaffView) -> str | None:
    """The text typed (SKIP where the step may be skipped), or None once told what is wrong."""
    text = (message.text or "").strip()
    if not text or (text.startswith("/") and not (may_skip and text == SKIP)):
        await message.answer(desk.t("wiz_need_text"))
        return None
    if len(text) > limit:
        await message.answer(desk.t("wiz_too_long", length=len(text), limit=limit))
        return None
    return text


# ----------------------------------------------------------------------------- start and cancel


async def start_wizard(message: Message, state: FSMContext, desk: StaffView) -> None:
    """/alert: begin composing a new alert."""
    await state.clear()
    await state.set_data({"districts": [], "content": {}})
    await _advance(message, state, Wizard.category, desk)


async def category_page(query: CallbackQuery, callback_data: WizCb, desk: StaffView) -> None:
    """Another page of categories."""
    if not isinstance(query.message, Message):
        await _expired(query, desk)
        return
    await query.answer()
    markup = view.categories(desk, callback_data.page)
    await query.message.edit_reply_markup(reply_markup=markup)


async def cancel_wizard(
    message: Message, state: FSMContext, session: AsyncSession, desk: StaffView
) -> None:
    """/cancel inside the wizard: forget the answers (and the unsent draft)."""
    data = await state.get_data()
    await staff.discard_own_draft(session, data.get("alert_id"), message.from_user.id)  # type: ignore[union-attr]
    await state.clear()
    await message.answer(desk.t("wiz_cancelled"))


# ----------------------------------------------------------------------------- answers


async def chose(
    query: CallbackQuery, callback_data: WizCb, state: FSMContext, desk: StaffView
) -> None:
    """A category, severity, urgency or expiry button: store it and ask the next question."""
    choice, value = CHOICES[callback_data.action], callback_data.value
    if value not in choice.values(desk.catalog) or not isinstance(query.message, Message):
        await _expired(query, desk)
        return
    answer = {choice.field: choice.parse(value)}
    await _advance(query.message, state, choice.then, desk, query, **answer)


async def chose_district(
    query: CallbackQuery, callback_data: WizCb, state: FSMContext, desk: StaffView
) -> None:
    """Toggle a district or All districts (which stands alone); Done moves on to severity."""
    value, catalog = callback_data.value, desk.catalog
    message = query.message
    if not isinstance(message, Message) or (
        callback_data.action == "dist" and value != ALL_DISTRICTS and value not in catalog.districts
    ):
        await _expired(query, desk)
        return
    data = await state.get_data()
    selected: list[str] = list(data.get("districts", []))
    if callback_data.action == "done":
        if not selected:
            await query.answer(desk.t("wiz_pick_district"), show_alert=True)
            return
        # An alert's empty district list means every district.
        districts = [] if ALL_DISTRICTS in selected else selected
        await _advance(message, state, Wizard.severity, desk, query, districts=districts)
        return
    if callback_data.action == "dist":
        selected = _toggle(selected, value)
        await state.update_data(districts=selected)
    await query.answer()
    markup = view.districts(desk, selected, callback_data.page)
    if callback_data.action == "dpage":
        await message.edit_reply_markup(reply_markup=markup)
        return
    if ALL_DISTRICTS in selected:
        names = desk.t("wiz_all")
    else:
        names = ", ".join(catalog.district_name(d, desk.lang) for d in selected) or "–"
    await message.edit_text(desk.t("wiz_districts", selected=names), reply_markup=markup)


def _toggle(selected: list[str], value: str) -> list[str]:
    """Tapping a district selects or unselects it; All districts stands alone (tapping it
    replaces the districts selected, tapping one of them replaces All)."""
    if value == ALL_DISTRICTS:
        return [] if ALL_DISTRICTS in selected else [ALL_DISTRICTS]
    selected = [d for d in selected if d != ALL_DISTRICTS]
    return [d for d in selected if d != value] if value in selected else [*selected, value]


async def got_text(message: Message, state: FSMContext, desk: StaffView) -> None:
    """A headline, body or instruction (or /skip where allowed)."""
    field = (await state.get_state() or "").split(":")[-1]
    data = await state.get_data()
    index = int(data.get("lang_index", 0))
    may_skip = field == "instruction" or (field == "headline" and index > 0)
    text = await _read_text(message, LIMITS[field], may_skip, desk)
    if text is None:
        return
    answers: dict[str, Any] = {"content": data.get("content", {})}
    if text != SKIP:
        answers["content"].setdefault(desk.langs[index], {})[field] = text
    # A skipped headline leaves this language out entirely.
    following = None if text == SKIP and field == "headline" else NEXT_TEXT.get(field)
    if following is None and index + 1 < len(desk.langs):
        following, answers["lang_index"] = Wizard.headline, index + 1
    await _advance(message, state, following or Wizard.expiry, desk, **answers)


async def typed_expiry(message: Message, state: FSMContext, desk: StaffView) -> None:
    """A typed expiry: a duration or a date and time in the bureau's zone."""
    when = service.parse_when(message.text or "", tz=desk.settings.bot.zone)
    if when is None:
        await message.answer(desk.t("wiz_bad_time", zone=desk.zone))
        return
    await _advance(message, state, Wizard.schedule, desk, expires=when.isoformat())


async def chose_now(
    query: CallbackQuery, state: FSMContext, session: AsyncSession, desk: StaffView
) -> None:
    """Send as soon as possible: show the preview."""
    if not isinstance(query.message, Message):
        await _expired(query, desk)
        return
    await state.update_data(scheduled=None)
    await query.answer()
    await query.message.edit_reply_markup(reply_markup=None)
    await _preview_new(query.message, query.from_user.id, state, session, desk)


async def typed_schedule(
    message: Message, state: FSMContext, session: AsyncSession, desk: StaffView
) -> None:
    """A typed sending time."""
    when = service.parse_when(message.text or "", tz=desk.settings.bot.zone)
    data = await state.get_data()
    expires = data.get("expires")
    if when is None or (expires and when >= datetime.fromisoformat(expires)):
        await message.answer(desk.t("wiz_bad_time", zone=desk.zone))
        return
    await state.update_data(scheduled=when.isoformat())
    assert message.from_user is not None  # private-chat messages always have a sender
    await _preview_new(message, message.from_user.id, state, session, desk)


async def expected_button(message: Message, desk: StaffView) -> None:
    """Text where a button was expected: say so and keep the step."""
    await message.answer(desk.t("wiz_use_buttons"))


# ----------------------------------------------------------------------------- preview and send


async def _preview_new(
    message: Message, user_id: int, state: FSMContext, session: AsyncSession, desk: StaffView
) -> None:
    data = await state.get_data()
    draft = service.AlertDraft(
        category=data["category"],
        severity=data["severity"],
        urgency=data["urgency"],
        content=data["content"],
        districts=list(data.get("districts", [])),
        expires_at=datetime.fromisoformat(data["expires"]) if data.get("expires") else None,
        scheduled_at=datetime.fromisoformat(data["scheduled"]) if data.get("scheduled") else None,
    )
    try:
        alert = await staff.compose(
            session, draft, catalog=desk.catalog, default_lang=desk.langs[0], author_id=user_id
        )
    except service.AlertError as exc:
        await message.answer(desk.t("alert_error", reason=str(exc)))
        await state.set_state(Wizard.expiry if "expir" in str(exc) else Wizard.schedule)
        await message.answer(desk.t("wiz_bad_time", zone=desk.zone))
        return
    await _show_preview(message, alert, state, session, desk)


async def _show_preview(
    message: Message, alert: Alert, state: FSMContext, session: AsyncSession, desk: StaffView
) -> None:
    await state.update_data(alert_id=alert.id)
    await state.set_state(Wizard.confirm)
    shown = [c for c in desk.langs if (alert.content.get(c) or {}).get("headline")]
    for content_lang in shown:
        # One message per language, exactly as citizens get it; the summary follows.
        rendered = desk.render(alert, content_lang)
        await message.answer(rendered.text, disable_notification=rendered.disable_notification)
    names = ", ".join(desk.locales.language_name(c) for c in shown)
    count = await staff.recipients(session, alert)
    approval = staff.requires_approval(alert, desk.settings.alerts.approval_severities)
    summary = desk.t(
        "wiz_summary",
        id=alert.id,
        category=desk.catalog.category_name(alert.category, desk.lang),
        districts=desk.catalog.districts_text(
            list(alert.districts), desk.lang, desk.t("sub_all_districts")
        ),
        severity=alert.severity,
        urgency=alert.urgency,
        expires=desk.time(alert.expires_at) or "–",
        when=desk.time(alert.scheduled_at) or desk.t("wiz_send_now"),
        count=count,
        approval=desk.t("wiz_needs_approval" if approval else "wiz_no_approval"),
    )
    await message.answer(
        desk.t("wiz_preview_intro", language=names) + "\n\n" + summary,
        reply_markup=view.send_or_cancel(desk, alert.id),
    )


async def confirm(
    query: CallbackQuery,
    callback_data: WizCb,
    state: FSMContext,
    session: AsyncSession,
    desk: StaffView,
    bot: Bot,
) -> None:
    """Send (to approval or the queue) or cancel the previewed draft."""
    data = await state.get_data()
    user_id = query.from_user.id
    message = query.message
    if (
        not callback_data.value.isdigit()
        or int(callback_data.value) != data.get("alert_id")
        or not isinstance(message, Message)
    ):
        await _expired(query, desk)
        return
    alert_id = int(callback_data.value)
    await query.answer()
    await message.edit_reply_markup(reply_markup=None)
    await state.clear()
    if callback_data.action == "cancel":
        await staff.discard_own_draft(session, alert_id, user_id)
        await message.answer(desk.t("wiz_cancelled"))
        return
    alert = await staff.own_draft(session, alert_id, user_id)
    if alert is None:
        await message.answer(desk.t("alert_not_found", id=alert_id))
        return
    severities = desk.settings.alerts.approval_severities
    if not staff.requires_approval(alert, severities):
        when = desk.time(alert.scheduled_at) or desk.t("wiz_send_now")
        await _queue(message, alert, when, session, user_id, desk)
        return
    request = await staff.request_approval(
        session,
        alert,
        actor_id=user_id,
        approval_severities=severities,
        admin_ids=desk.settings.bot.admin_ids,
        locales=desk.locales,
    )
    reached = await _ask_approvers(bot, alert, request, desk, query.from_user.full_name)
    key = "wiz_waiting_approval" if reached else "wiz_no_approvers"
    subject = alert_subject(alert, desk.locales, desk.lang)
    status = await message.answer(desk.t(key, subject=subject, count=reached))
    staff.track(alert, (status.chat.id, status.message_id))


async def _queue(
    message: Message, alert: Alert, when: str, session: AsyncSession, actor_id: int, desk: StaffView
) -> None:
    """Say that the alert is queued, in the message that will show its progress, and queue it."""
    subject = alert_subject(alert, desk.locales, desk.lang)
    status = await message.answer(desk.t("wiz_queued", subject=subject, when=when))
    progress = (status.chat.id, status.message_id)
    await service.submit(
        session, alert.id, actor_id=actor_id, approval_severities=[], progress=progress
    )


async def _ask_approvers(
    bot: Bot, alert: Alert, request: staff.ApprovalRequest, desk: StaffView, author: str
) -> int:
    """Send the approval request with the preview to every other staff member; how many got it."""
    reached = 0
    for user_id, lang in request.colleagues:
        rendered = desk.render(alert, lang)
        text = desk.locales.t(
            lang,
            "approval_request",
            id=alert.id,
            author=author,
            severity=alert.severity,
            count=request.recipients,
        )
        markup = view.approve_or_reject(desk.locales, lang, alert.id)
        try:
            await bot.send_message(user_id, text)
            await bot.send_message(user_id, rendered.text, reply_markup=markup)
        except TelegramAPIError:
            continue  # they never started the bot; /pending shows it to them later
        reached += 1
    return reached


# ----------------------------------------------------------------------------- approval

# Why a pressed Approve or Reject changed nothing (`staff.Decision.stale`), as staff read it.
STALE_TEXTS: dict[staff.Stale, str] = {
    "replaced": "approval_replaced",
    "withdrawn": "approval_withdrawn",
    "rejected": "approval_already_rejected",
    "approved": "approval_already_approved",
    "gone": "approval_gone",
}


async def approval(
    query: CallbackQuery, callback_data: ApproveCb, session: AsyncSession, desk: StaffView, bot: Bot
) -> None:
    """A second staff member approves or rejects; the author cannot approve their own."""
    name = query.from_user.full_name
    decision = await staff.decide(
        session,
        callback_data.alert_id,
        approve=callback_data.ok,
        actor_id=query.from_user.id,
        locales=desk.locales,
    )
    if decision is None:
        await _expired(query, desk)
        return
    alert = decision.alert
    if decision.own:
        await query.answer(desk.t("approval_own", id=alert.id), show_alert=True)
        return
    if decision.stale is not None:
        # Decided by a colleague, withdrawn or replaced: say which, and take the stale buttons
        # away so that nobody presses them again.
        text = desk.t(
            STALE_TEXTS[decision.stale],
            id=alert.id,
            new_id=decision.replaced_by,
            name=decision.approver,
        )
        await query.answer(text, show_alert=True)
        if isinstance(query.message, Message) and decision.settled:
            with contextlib.suppress(TelegramAPIError):
                await query.message.edit_reply_markup(reply_markup=None)
        return
    key = "approval_done" if callback_data.ok else "approval_rejected"
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)
        await query.message.answer(desk.t(key, id=alert.id, name=name))
    if alert.created_by:
        text = desk.locales.t(decision.author_lang, key, id=alert.id, name=name)
        with contextlib.suppress(TelegramAPIError):
            await bot.send_message(alert.created_by, text)


async def pending(message: Message, session: AsyncSession, desk: StaffView) -> None:
    """/pending: alerts waiting for approval, with the buttons."""
    waiting = await staff.pending(session)
    if not waiting:
        await message.answer(desk.t("pending_none"))
        return
    for alert, author in waiting:
        rendered = desk.render(alert, desk.lang)
        await message.answer(
            desk.t(
                "pending_item",
                id=alert.id,
                severity=alert.severity,
                headline=(alert.content.get(desk.langs[0]) or {}).get("headline", ""),
                author=author or alert.created_by or "CAP",
            )
        )
        markup = view.approve_or_reject(desk.locales, desk.lang, alert.id)
        await message.answer(rendered.text, reply_markup=markup)


# ----------------------------------------------------------------------------- stop / resume


def _target(command: CommandObject) -> int | None:
    args = (command.args or "").strip().lstrip("#")
    return int(args) if args.isdigit() else None


async def stop_or_resume(
    message: Message, command: CommandObject, session: AsyncSession, desk: StaffView
) -> None:
    """/stop [id] pauses running broadcasts (in-flight messages finish); /resume continues."""
    verb = command.command  # "stop" or "resume": also the prefix of the reply texts
    alerts = await service.set_paused(
        session,
        _target(command),
        paused=verb == "stop",
        actor_id=message.from_user.id,  # type: ignore[union-attr]
    )
    if not alerts:
        await message.answer(desk.t(f"{verb}_none"))
        return
    await message.answer(desk.t(f"{verb}_done", ids=", ".join(f"#{a.id}" for a in alerts)))


# ----------------------------------------------------------------------------- update / cancel


async def _begin_update(
    message: Message, alert_id: int, state: FSMContext, session: AsyncSession, desk: StaffView
) -> None:
    if await staff.sent_original(session, alert_id) is None:
        await message.answer(desk.t("alert_not_found", id=alert_id))
        return
    await state.clear()
    await state.set_state(Wizard.update_text)
    await state.set_data({"original_id": alert_id, "lang_index": 0, "content": {}})
    language = desk.locales.language_name(desk.langs[0])
    await message.answer(desk.t("update_ask", id=alert_id, language=language))


async def _begin_cancel(
    message: Message, alert_id: int, session: AsyncSession, desk: StaffView
) -> None:
    count = await staff.cancel_reach(session, alert_id)
    if count is None:
        await message.answer(desk.t("alert_not_found", id=alert_id))
        return
    await message.answer(
        desk.t("cancel_confirm", id=alert_id, count=count),
        reply_markup=view.confirm_cancel(desk, alert_id),
    )


async def update_command(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    session: AsyncSession,
    desk: StaffView,
) -> None:
    """/update_alert ID: send an UPDATE to the alert's recipients."""
    await _begin_update(message, _target(command) or 0, state, session, desk)


async def cancel_command(
    message: Message, command: CommandObject, session: AsyncSession, desk: StaffView
) -> None:
    """/cancel_alert ID: send a CANCELLED notice to the alert's recipients."""
    await _begin_cancel(message, _target(command) or 0, session, desk)


async def alert_action(
    query: CallbackQuery,
    callback_data: AlertActCb,
    state: FSMContext,
    session: AsyncSession,
    desk: StaffView,
) -> None:
    """Update / Cancel buttons under a finished broadcast, and the cancel confirmation."""
    message = query.message
    if not isinstance(message, Message):
        await _expired(query, desk)
        return
    await query.answer()
    alert_id = callback_data.alert_id
    if callback_data.action == "update":
        await _begin_update(message, alert_id, state, session, desk)
    elif callback_data.action == "cancel":
        await _begin_cancel(message, alert_id, session, desk)
    elif callback_data.action == "cancel_no":
        await message.edit_reply_markup(reply_markup=None)
    elif callback_data.action == "cancel_yes":
        await message.edit_reply_markup(reply_markup=None)
        draft = await staff.draft_cancellation(session, alert_id, query.from_user.id)
        if draft is None:
            await message.answer(desk.t("alert_not_found", id=alert_id))
            return
        await _queue(message, draft, desk.t("wiz_send_now"), session, query.from_user.id, desk)
    else:
        await _expired(query, desk)


async def update_text(
    message: Message, state: FSMContext, session: AsyncSession, desk: StaffView
) -> None:
    """The text of an update, language by language; then the preview."""
    data = await state.get_data()
    langs = desk.langs
    index = int(data.get("lang_index", 0))
    text = await _read_text(message, LIMITS["description"], index > 0, desk)
    if text is None:
        return
    content: dict[str, dict[str, str]] = data.get("content", {})
    if text != SKIP:
        content[langs[index]] = {"description": text}
    if index + 1 < len(langs):
        await state.update_data(content=content, lang_index=index + 1)
        names = desk.locales.language_name
        await message.answer(
            desk.t("update_ask_optional", language=names(langs[index + 1]), default=names(langs[0]))
        )
        return
    try:
        draft = await service.derive(
            session,
            int(data["original_id"]),
            AlertKind.UPDATE,
            author_id=message.from_user.id,  # type: ignore[union-attr]
            content=content,
        )
    except service.AlertError as exc:
        await state.clear()
        await message.answer(desk.t("alert_error", reason=str(exc)))
        return
    await _show_preview(message, draft, state, session, desk)

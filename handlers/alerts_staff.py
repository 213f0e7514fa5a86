"""Communications staff: the /alert wizard, approval, /stop, /resume, update and cancel.

Only staff and admins reach this router (a filter on the router); anyone else's /alert falls
through to the citizen handlers. Wizard answers live in the FSM (Redis or the database), so a
restart mid-wizard continues where the staff member was.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bot.alerts import service, staff
from bot.alerts.callbacks import AlertActCb
from bot.alerts.catalog import ALL_DISTRICTS, Catalog
from bot.alerts.render import format_time, utc_offset
from bot.alerts.wiring import alert_subject
from bot.config import Settings
from bot.db.models import Alert, AlertKind
from bot.i18n import Locales
from handlers import alerts_keyboards as kb
from handlers.alerts_keyboards import ApproveCb, WizCb
from handlers.filters import PRIVATE, PRIVATE_CALLBACK, alert_staff

router = Router(name=__name__)


router.message.filter(PRIVATE, alert_staff)
router.callback_query.filter(PRIVATE_CALLBACK, alert_staff)

LIMITS = {"headline": 200, "description": 2000, "instruction": 800}


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


def _langs(settings: Settings) -> list[str]:
    default = settings.bot.default_language
    return [default, *[lang for lang in settings.bot.languages if lang != default]]


async def _expired(query: CallbackQuery, locales: Locales, lang: str) -> None:
    await query.answer(locales.t(lang, "button_expired"), show_alert=True)


# ----------------------------------------------------------------------------- start and cancel


@router.message(Command("alert"))
async def start_wizard(
    message: Message, state: FSMContext, catalog: Catalog, locales: Locales, lang: str
) -> None:
    """/alert: begin composing a new alert."""
    await state.clear()
    await state.set_state(Wizard.category)
    await state.set_data({"districts": [], "content": {}})
    await message.answer(locales.t(lang, "wiz_start"), reply_markup=kb.categories(catalog, lang))


@router.callback_query(WizCb.filter(F.action == "cpage"), Wizard.category)
async def category_page(
    query: CallbackQuery, callback_data: WizCb, catalog: Catalog, locales: Locales, lang: str
) -> None:
    """Another page of categories."""
    if not isinstance(query.message, Message):
        await _expired(query, locales, lang)
        return
    await query.answer()
    await query.message.edit_reply_markup(
        reply_markup=kb.categories(catalog, lang, callback_data.page)
    )


@router.message(Command("cancel"), ~StateFilter(None))
async def cancel_wizard(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    locales: Locales,
    lang: str,
) -> None:
    """/cancel inside the wizard: forget the answers (and the unsent draft)."""
    data = await state.get_data()
    await staff.discard_own_draft(session, data.get("alert_id"), message.from_user.id)  # type: ignore[union-attr]
    await state.clear()
    await message.answer(locales.t(lang, "wiz_cancelled"))


# ----------------------------------------------------------------------------- choices


@router.callback_query(WizCb.filter(F.action == "cat"), Wizard.category)
async def chose_category(
    query: CallbackQuery,
    callback_data: WizCb,
    state: FSMContext,
    catalog: Catalog,
    locales: Locales,
    lang: str,
) -> None:
    """Category picked: ask for districts."""
    if callback_data.value not in catalog.categories or not isinstance(query.message, Message):
        await _expired(query, locales, lang)
        return
    await state.update_data(category=callback_data.value, districts=[])
    await state.set_state(Wizard.districts)
    await query.answer()
    await query.message.edit_text(
        locales.t(lang, "wiz_districts", selected="–"),
        reply_markup=kb.districts(catalog, locales, lang, []),
    )


@router.callback_query(WizCb.filter(F.action.in_({"dist", "dpage", "done"})), Wizard.districts)
async def chose_district(
    query: CallbackQuery,
    callback_data: WizCb,
    state: FSMContext,
    catalog: Catalog,
    locales: Locales,
    lang: str,
) -> None:
    """Toggle a district or All districts (which stands alone); Done moves on to severity."""
    value = callback_data.value
    message = query.message
    if not isinstance(message, Message) or (
        callback_data.action == "dist" and value != ALL_DISTRICTS and value not in catalog.districts
    ):
        await _expired(query, locales, lang)
        return
    data = await state.get_data()
    selected: list[str] = list(data.get("districts", []))
    if callback_data.action == "dpage":
        await query.answer()
        await message.edit_reply_markup(
            reply_markup=kb.districts(catalog, locales, lang, selected, callback_data.page)
        )
        return
    if callback_data.action == "dist":
        if value == ALL_DISTRICTS:
            selected = [] if ALL_DISTRICTS in selected else [ALL_DISTRICTS]
        else:
            selected = [d for d in selected if d != ALL_DISTRICTS]
            selected = (
                [d for d in selected if d != value] if value in selected else [*selected, value]
            )
        await state.update_data(districts=selected)
        await query.answer()
        if ALL_DISTRICTS in selected:
            names = locales.t(lang, "wiz_all")
        else:
            names = ", ".join(catalog.district_name(d, lang) for d in selected) or "–"
        await message.edit_text(
            locales.t(lang, "wiz_districts", selected=names),
            reply_markup=kb.districts(catalog, locales, lang, selected, callback_data.page),
        )
        return
    if not selected:
        await query.answer(locales.t(lang, "wiz_pick_district"), show_alert=True)
        return
    # An alert's empty district list means every district.
    await state.update_data(districts=[] if ALL_DISTRICTS in selected else selected)
    await state.set_state(Wizard.severity)
    await query.answer()
    await message.edit_text(locales.t(lang, "wiz_severity"), reply_markup=kb.severities())


@router.callback_query(WizCb.filter(F.action == "sev"), Wizard.severity)
async def chose_severity(
    query: CallbackQuery,
    callback_data: WizCb,
    state: FSMContext,
    locales: Locales,
    lang: str,
) -> None:
    """Severity picked: ask for urgency."""
    if callback_data.value not in service.SEVERITIES or not isinstance(query.message, Message):
        await _expired(query, locales, lang)
        return
    await state.update_data(severity=callback_data.value)
    await state.set_state(Wizard.urgency)
    await query.answer()
    await query.message.edit_text(locales.t(lang, "wiz_urgency"), reply_markup=kb.urgencies())


@router.callback_query(WizCb.filter(F.action == "urg"), Wizard.urgency)
async def chose_urgency(
    query: CallbackQuery,
    callback_data: WizCb,
    state: FSMContext,
    settings: Settings,
    locales: Locales,
    lang: str,
) -> None:
    """Urgency picked: ask for the texts, language by language."""
    if callback_data.value not in service.URGENCIES or not isinstance(query.message, Message):
        await _expired(query, locales, lang)
        return
    await state.update_data(urgency=callback_data.value, lang_index=0)
    await query.answer()
    await query.message.edit_reply_markup(reply_markup=None)
    await _ask_text(query.message, state, settings, locales, lang, "headline")


async def _ask_text(
    message: Message,
    state: FSMContext,
    settings: Settings,
    locales: Locales,
    lang: str,
    field: str,
) -> None:
    data = await state.get_data()
    langs = _langs(settings)
    content_lang = langs[int(data.get("lang_index", 0))]
    await state.set_state(getattr(Wizard, field))
    names = {
        "language": locales.language_name(content_lang),
        "limit": LIMITS[field],
        "default": locales.language_name(langs[0]),
    }
    key = {"headline": "wiz_headline", "description": "wiz_description"}.get(
        field, "wiz_instruction"
    )
    if field == "headline" and content_lang != langs[0]:
        key = "wiz_headline_optional"
    await message.answer(locales.t(lang, key, **names))


@router.message(StateFilter(Wizard.headline, Wizard.description, Wizard.instruction))
async def got_text(
    message: Message,
    state: FSMContext,
    settings: Settings,
    locales: Locales,
    lang: str,
) -> None:
    """A headline, body or instruction (or /skip where allowed)."""
    current = await state.get_state()
    field = (current or "").split(":")[-1]
    data = await state.get_data()
    langs = _langs(settings)
    index = int(data.get("lang_index", 0))
    content_lang = langs[index]
    text = (message.text or "").strip()
    skip = text == "/skip"
    skippable = field == "instruction" or (field == "headline" and index > 0)
    if not text or (text.startswith("/") and not (skip and skippable)):
        await message.answer(locales.t(lang, "wiz_need_text"))
        return
    if len(text) > LIMITS[field]:
        await message.answer(locales.t(lang, "wiz_too_long", length=len(text), limit=LIMITS[field]))
        return
    content: dict[str, dict[str, str]] = data.get("content", {})
    if not skip:
        content.setdefault(content_lang, {})[field] = text
    await state.update_data(content=content)
    next_field = {"headline": "description", "description": "instruction"}.get(field)
    if skip and field == "headline":
        next_field = None  # this language is left out entirely
    if next_field is not None:
        await _ask_text(message, state, settings, locales, lang, next_field)
        return
    if index + 1 < len(langs):
        await state.update_data(lang_index=index + 1)
        await _ask_text(message, state, settings, locales, lang, "headline")
        return
    await state.set_state(Wizard.expiry)
    await message.answer(
        locales.t(lang, "wiz_expiry", zone=_zone_label(settings)),
        reply_markup=kb.expiries(locales, lang),
    )


@router.callback_query(WizCb.filter(F.action == "exp"), Wizard.expiry)
async def chose_expiry(
    query: CallbackQuery,
    callback_data: WizCb,
    state: FSMContext,
    settings: Settings,
    locales: Locales,
    lang: str,
) -> None:
    """An expiry button."""
    if callback_data.value not in {"0", *map(str, kb.EXPIRY_HOURS)} or not isinstance(
        query.message, Message
    ):
        await _expired(query, locales, lang)
        return
    hours = int(callback_data.value)
    expires = service.parse_when(f"{hours}h") if hours else None
    await state.update_data(expires=expires.isoformat() if expires else None)
    await query.answer()
    await query.message.edit_reply_markup(reply_markup=None)
    await _ask_schedule(query.message, state, settings, locales, lang)


@router.message(Wizard.expiry)
async def typed_expiry(
    message: Message, state: FSMContext, settings: Settings, locales: Locales, lang: str
) -> None:
    """A typed expiry: a duration or a date and time in the bureau's zone."""
    when = service.parse_when(message.text or "", tz=settings.bot.zone)
    if when is None:
        await message.answer(locales.t(lang, "wiz_bad_time", zone=_zone_label(settings)))
        return
    await state.update_data(expires=when.isoformat())
    await _ask_schedule(message, state, settings, locales, lang)


async def _ask_schedule(
    message: Message, state: FSMContext, settings: Settings, locales: Locales, lang: str
) -> None:
    await state.set_state(Wizard.schedule)
    await message.answer(
        locales.t(lang, "wiz_schedule", zone=_zone_label(settings)),
        reply_markup=kb.send_now(locales, lang),
    )


def _zone_label(settings: Settings) -> str:
    """The bureau's zone as staff read it: Asia/Shanghai, UTC+08:00."""
    return f"{settings.bot.timezone}, {utc_offset(datetime.now(settings.bot.zone))}"


@router.callback_query(WizCb.filter(F.action == "now"), Wizard.schedule)
async def chose_now(
    query: CallbackQuery,
    state: FSMContext,
    session: AsyncSession,
    settings: Settings,
    catalog: Catalog,
    locales: Locales,
    lang: str,
) -> None:
    """Send as soon as possible: show the preview."""
    if not isinstance(query.message, Message):
        await _expired(query, locales, lang)
        return
    await state.update_data(scheduled=None)
    await query.answer()
    await query.message.edit_reply_markup(reply_markup=None)
    await _preview_new(
        query.message, query.from_user.id, state, session, settings, catalog, locales, lang
    )


@router.message(Wizard.schedule)
async def typed_schedule(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    settings: Settings,
    catalog: Catalog,
    locales: Locales,
    lang: str,
) -> None:
    """A typed sending time."""
    when = service.parse_when(message.text or "", tz=settings.bot.zone)
    data = await state.get_data()
    expires = data.get("expires")
    if when is None or (expires and when >= datetime.fromisoformat(expires)):
        await message.answer(locales.t(lang, "wiz_bad_time", zone=_zone_label(settings)))
        return
    await state.update_data(scheduled=when.isoformat())
    assert message.from_user is not None  # private-chat messages always have a sender
    await _preview_new(
        message, message.from_user.id, state, session, settings, catalog, locales, lang
    )


@router.message(
    StateFilter(Wizard.category, Wizard.districts, Wizard.severity, Wizard.urgency, Wizard.confirm)
)
async def expected_button(message: Message, locales: Locales, lang: str) -> None:
    """Text where a button was expected: say so and keep the step."""
    await message.answer(locales.t(lang, "wiz_use_buttons"))


# ----------------------------------------------------------------------------- preview and send


async def _preview_new(
    message: Message,
    user_id: int,
    state: FSMContext,
    session: AsyncSession,
    settings: Settings,
    catalog: Catalog,
    locales: Locales,
    lang: str,
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
    default = settings.bot.default_language
    try:
        alert = await staff.compose(
            session, draft, catalog=catalog, default_lang=default, author_id=user_id
        )
    except service.AlertError as exc:
        await message.answer(locales.t(lang, "alert_error", reason=str(exc)))
        await state.set_state(Wizard.expiry if "expir" in str(exc) else Wizard.schedule)
        await message.answer(locales.t(lang, "wiz_bad_time", zone=_zone_label(settings)))
        return
    await _show_preview(message, alert, state, session, settings, catalog, locales, lang)


async def _show_preview(
    message: Message,
    alert: Alert,
    state: FSMContext,
    session: AsyncSession,
    settings: Settings,
    catalog: Catalog,
    locales: Locales,
    lang: str,
) -> None:
    await state.update_data(alert_id=alert.id)
    await state.set_state(Wizard.confirm)
    default = settings.bot.default_language
    shown = [c for c in _langs(settings) if (alert.content.get(c) or {}).get("headline")]
    for content_lang in shown:
        # One message per language, exactly as citizens get it; the summary follows.
        rendered = service.render_for(alert, content_lang, catalog, default, tz=settings.bot.zone)
        await message.answer(rendered.text, disable_notification=rendered.disable_notification)
    intro = locales.t(
        lang, "wiz_preview_intro", language=", ".join(locales.language_name(c) for c in shown)
    )
    count = await staff.recipients(session, alert)
    approval = staff.requires_approval(alert, settings.alerts.approval_severities)
    summary = locales.t(
        lang,
        "wiz_summary",
        id=alert.id,
        category=catalog.category_name(alert.category, lang),
        districts=catalog.districts_text(
            list(alert.districts), lang, locales.t(lang, "sub_all_districts")
        ),
        severity=alert.severity,
        urgency=alert.urgency,
        expires=_fmt(alert.expires_at, settings) or "–",
        when=_fmt(alert.scheduled_at, settings) or locales.t(lang, "wiz_send_now"),
        count=count,
        approval=locales.t(lang, "wiz_needs_approval" if approval else "wiz_no_approval"),
    )
    await message.answer(
        intro + "\n\n" + summary, reply_markup=kb.send_or_cancel(locales, lang, alert.id)
    )


def _fmt(value: datetime | None, settings: Settings) -> str | None:
    """A time as staff read it, in the bureau's zone: 2026-06-01 18:00 (UTC+08:00)."""
    return format_time(value, settings.bot.zone) if value else None


@router.callback_query(WizCb.filter(F.action.in_({"send", "cancel"})), Wizard.confirm)
async def confirm(
    query: CallbackQuery,
    callback_data: WizCb,
    state: FSMContext,
    session: AsyncSession,
    settings: Settings,
    catalog: Catalog,
    locales: Locales,
    lang: str,
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
        await _expired(query, locales, lang)
        return
    alert_id = int(callback_data.value)
    await query.answer()
    await message.edit_reply_markup(reply_markup=None)
    await state.clear()
    if callback_data.action == "cancel":
        await staff.discard_own_draft(session, alert_id, user_id)
        await message.answer(locales.t(lang, "wiz_cancelled"))
        return
    alert = await staff.own_draft(session, alert_id, user_id)
    if alert is None:
        await message.answer(locales.t(lang, "alert_not_found", id=alert_id))
        return
    severities = settings.alerts.approval_severities
    if not staff.requires_approval(alert, severities):
        when = _fmt(alert.scheduled_at, settings) or locales.t(lang, "wiz_send_now")
        await _queue(message, alert, when, session, user_id, locales, lang)
        return
    request = await staff.request_approval(
        session,
        alert,
        actor_id=user_id,
        approval_severities=severities,
        admin_ids=settings.bot.admin_ids,
        locales=locales,
    )
    reached = await _ask_approvers(
        bot, alert, request, settings, catalog, locales, query.from_user.full_name
    )
    key = "wiz_waiting_approval" if reached else "wiz_no_approvers"
    subject = alert_subject(alert, locales, lang)
    status = await message.answer(locales.t(lang, key, subject=subject, count=reached))
    staff.track(alert, (status.chat.id, status.message_id))


async def _queue(
    message: Message,
    alert: Alert,
    when: str,
    session: AsyncSession,
    actor_id: int,
    locales: Locales,
    lang: str,
) -> None:
    """Say that the alert is queued, in the message that will show its progress, and queue it."""
    subject = alert_subject(alert, locales, lang)
    status = await message.answer(locales.t(lang, "wiz_queued", subject=subject, when=when))
    await service.submit(
        session,
        alert.id,
        actor_id=actor_id,
        approval_severities=[],
        progress=(status.chat.id, status.message_id),
    )


async def _ask_approvers(
    bot: Bot,
    alert: Alert,
    request: staff.ApprovalRequest,
    settings: Settings,
    catalog: Catalog,
    locales: Locales,
    author: str,
) -> int:
    """Send the approval request with the preview to every other staff member; how many got it."""
    default = settings.bot.default_language
    reached = 0
    for user_id, lang in request.colleagues:
        rendered = service.render_for(alert, lang, catalog, default, tz=settings.bot.zone)
        try:
            await bot.send_message(
                user_id,
                locales.t(
                    lang,
                    "approval_request",
                    id=alert.id,
                    author=author,
                    severity=alert.severity,
                    count=request.recipients,
                ),
            )
            await bot.send_message(
                user_id, rendered.text, reply_markup=kb.approve_or_reject(locales, lang, alert.id)
            )
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


@router.callback_query(ApproveCb.filter())
async def approval(
    query: CallbackQuery,
    callback_data: ApproveCb,
    session: AsyncSession,
    locales: Locales,
    lang: str,
    bot: Bot,
) -> None:
    """A second staff member approves or rejects; the author cannot approve their own."""
    name = query.from_user.full_name
    decision = await staff.decide(
        session,
        callback_data.alert_id,
        approve=callback_data.ok,
        actor_id=query.from_user.id,
        locales=locales,
    )
    if decision is None:
        await _expired(query, locales, lang)
        return
    alert = decision.alert
    if decision.own:
        await query.answer(locales.t(lang, "approval_own", id=alert.id), show_alert=True)
        return
    if decision.stale is not None:
        # Decided by a colleague, withdrawn or replaced: say which, and take the stale buttons
        # away so that nobody presses them again.
        text = locales.t(
            lang,
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
    text = locales.t(lang, key, id=alert.id, name=name)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)
        await query.message.answer(text)
    if alert.created_by:
        with contextlib.suppress(TelegramAPIError):
            await bot.send_message(
                alert.created_by, locales.t(decision.author_lang, key, id=alert.id, name=name)
            )


@router.message(Command("pending"))
async def pending(
    message: Message,
    session: AsyncSession,
    settings: Settings,
    catalog: Catalog,
    locales: Locales,
    lang: str,
) -> None:
    """/pending: alerts waiting for approval, with the buttons."""
    waiting = await staff.pending(session)
    if not waiting:
        await message.answer(locales.t(lang, "pending_none"))
        return
    default = settings.bot.default_language
    for alert, author in waiting:
        rendered = service.render_for(alert, lang, catalog, default, tz=settings.bot.zone)
        await message.answer(
            locales.t(
                lang,
                "pending_item",
                id=alert.id,
                severity=alert.severity,
                headline=(alert.content.get(default) or {}).get("headline", ""),
                author=author or alert.created_by or "CAP",
            )
        )
        await message.answer(
            rendered.text, reply_markup=kb.approve_or_reject(locales, lang, alert.id)
        )


# ----------------------------------------------------------------------------- stop / resume


def _target(command: CommandObject) -> int | None:
    args = (command.args or "").strip().lstrip("#")
    return int(args) if args.isdigit() else None


@router.message(Command("stop", "resume"))
async def stop_or_resume(
    message: Message, command: CommandObject, session: AsyncSession, locales: Locales, lang: str
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
        await message.answer(locales.t(lang, f"{verb}_none"))
        return
    await message.answer(locales.t(lang, f"{verb}_done", ids=", ".join(f"#{a.id}" for a in alerts)))


# ----------------------------------------------------------------------------- update / cancel


async def _begin_update(
    message: Message,
    alert_id: int,
    state: FSMContext,
    session: AsyncSession,
    settings: Settings,
    locales: Locales,
    lang: str,
) -> None:
    if await staff.sent_original(session, alert_id) is None:
        await message.answer(locales.t(lang, "alert_not_found", id=alert_id))
        return
    await state.clear()
    await state.set_state(Wizard.update_text)
    await state.set_data({"original_id": alert_id, "lang_index": 0, "content": {}})
    langs = _langs(settings)
    await message.answer(
        locales.t(lang, "update_ask", id=alert_id, language=locales.language_name(langs[0]))
    )


async def _begin_cancel(
    message: Message, alert_id: int, session: AsyncSession, locales: Locales, lang: str
) -> None:
    count = await staff.cancel_reach(session, alert_id)
    if count is None:
        await message.answer(locales.t(lang, "alert_not_found", id=alert_id))
        return
    await message.answer(
        locales.t(lang, "cancel_confirm", id=alert_id, count=count),
        reply_markup=kb.confirm_cancel(locales, lang, alert_id),
    )


@router.message(Command("update_alert"))
async def update_command(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    session: AsyncSession,
    settings: Settings,
    locales: Locales,
    lang: str,
) -> None:
    """/update_alert ID: send an UPDATE to the alert's recipients."""
    await _begin_update(message, _target(command) or 0, state, session, settings, locales, lang)


@router.message(Command("cancel_alert"))
async def cancel_command(
    message: Message, command: CommandObject, session: AsyncSession, locales: Locales, lang: str
) -> None:
    """/cancel_alert ID: send a CANCELLED notice to the alert's recipients."""
    await _begin_cancel(message, _target(command) or 0, session, locales, lang)


@router.callback_query(AlertActCb.filter())
async def alert_action(
    query: CallbackQuery,
    callback_data: AlertActCb,
    state: FSMContext,
    session: AsyncSession,
    settings: Settings,
    locales: Locales,
    lang: str,
) -> None:
    """Update / Cancel buttons under a finished broadcast, and the cancel confirmation."""
    message = query.message
    if not isinstance(message, Message):
        await _expired(query, locales, lang)
        return
    await query.answer()
    alert_id = callback_data.alert_id
    if callback_data.action == "update":
        await _begin_update(message, alert_id, state, session, settings, locales, lang)
    elif callback_data.action == "cancel":
        await _begin_cancel(message, alert_id, session, locales, lang)
    elif callback_data.action == "cancel_no":
        await message.edit_reply_markup(reply_markup=None)
    elif callback_data.action == "cancel_yes":
        await message.edit_reply_markup(reply_markup=None)
        draft = await staff.draft_cancellation(session, alert_id, query.from_user.id)
        if draft is None:
            await message.answer(locales.t(lang, "alert_not_found", id=alert_id))
            return
        now = locales.t(lang, "wiz_send_now")
        await _queue(message, draft, now, session, query.from_user.id, locales, lang)
    else:
        await _expired(query, locales, lang)


@router.message(Wizard.update_text)
async def update_text(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    settings: Settings,
    catalog: Catalog,
    locales: Locales,
    lang: str,
) -> None:
    """The text of an update, language by language; then the preview."""
    data = await state.get_data()
    langs = _langs(settings)
    index = int(data.get("lang_index", 0))
    text = (message.text or "").strip()
    skip = text == "/skip" and index > 0
    if not text or (text.startswith("/") and not skip):
        await message.answer(locales.t(lang, "wiz_need_text"))
        return
    if len(text) > LIMITS["description"]:
        await message.answer(
            locales.t(lang, "wiz_too_long", length=len(text), limit=LIMITS["description"])
        )
        return
    content: dict[str, dict[str, str]] = data.get("content", {})
    if not skip:
        content[langs[index]] = {"description": text}
    if index + 1 < len(langs):
        await state.update_data(content=content, lang_index=index + 1)
        await message.answer(
            locales.t(
                lang,
                "update_ask_optional",
                language=locales.language_name(langs[index + 1]),
                default=locales.language_name(langs[0]),
            )
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
        await message.answer(locales.t(lang, "alert_error", reason=str(exc)))
        return
    await _show_preview(message, draft, state, session, settings, catalog, locales, lang)

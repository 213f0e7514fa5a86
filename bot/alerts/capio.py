"""CAP 1.2 in and out: a CAP message becomes an alert on the normal approval and delivery path,
and every alert can be written as CAP 1.2.

Mapping: each `<info>` is one language (en-US → en); the first info gives category (our
category whose `cap_category` matches, or whose id appears in `<event>`), urgency, severity,
certainty and expiry. Districts come from `<geocode>` values (a district's geocodes, or its id
or English name) and, failing that, from district names in `<areaDesc>`.
"""

from __future__ import annotations

from datetime import UTC

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.alerts import service
from bot.alerts.cap import (
    CapAlert,
    CapArea,
    CapInfo,
    CapReference,
    CapValue,
    cap_text,
    parse_cap,
    to_cap_xml,
)
from bot.alerts.catalog import Catalog
from bot.db.models import Alert, AlertKind, AlertStatus
from bot.db.models import Alert as AlertRow

GEOCODE_NAME = "SAFEWELL-DISTRICT"
CAP_LANG = {"en": "en-US", "zh": "zh-CN"}


def _lang(tag: str) -> str:
    return tag.lower().replace("_", "-").split("-")[0] or "en"


def _districts(catalog: Catalog, areas: list[CapArea]) -> list[str]:
    found: list[str] = []

    def add(district: str | None) -> None:
        if district and district not in found:
            found.append(district)

    by_key = {d.id: d.id for d in catalog.districts.values()}
    by_key.update({d.name("en").lower(): d.id for d in catalog.districts.values()})
    for area in areas:
        for code in area.geocodes:
            value = code.value.strip()
            add(
                catalog.district_for_geocode(value)
                or by_key.get(value.lower().replace("_", "-"))
                or by_key.get(value.lower().replace("_", " "))
            )
    if not found:
        for area in areas:
            desc = area.area_desc.lower()
            for district in catalog.districts.values():
                names = [n.lower() for n in district.names.values()]
                if any(n and n in desc for n in names):
                    add(district.id)
    return found


def draft_from_cap(cap: CapAlert, catalog: Catalog) -> service.AlertDraft:
    """The alert a CAP message asks for; AlertError when it cannot be broadcast."""
    if cap.status != "Actual":
        raise service.AlertError(f"status {cap.status}: only Actual alerts are broadcast")
    if not cap.infos:
        raise service.AlertError("the CAP alert has no <info> block")
    first = cap.infos[0]
    category = catalog.category_for_cap(list(first.categories), first.event)
    if category is None:
        raise service.AlertError(f"no subscription category for CAP category {first.categories}")
    if first.severity not in service.SEVERITIES:
        raise service.AlertError(f"severity {first.severity} cannot be broadcast")
    content: dict[str, dict[str, str]] = {}
    for info in cap.infos:
        texts = {
            "headline": (info.headline or info.event).strip(),
            "description": (info.description or "").strip(),
            "instruction": (info.instruction or "").strip(),
        }
        content.setdefault(_lang(info.language), {k: v for k, v in texts.items() if v})
    areas = [area for info in cap.infos for area in info.areas]
    # An area we cannot map (a polygon only, an unknown name) goes to every district: better
    # to over-warn than to drop a warning; the preview and approval show "All districts".
    districts = _districts(catalog, areas)
    return service.AlertDraft(
        category=category,
        severity=first.severity,
        urgency=first.urgency,
        certainty=first.certainty,
        content=content,
        districts=districts,
        expires_at=first.expires.astimezone(UTC) if first.expires else None,
    )


async def import_cap(
    session: AsyncSession,
    data: bytes,
    catalog: Catalog,
    *,
    default_lang: str,
    approval_severities: list[str],
    source: str = "cap",
    actor_id: int | None = None,
) -> Alert:
    """Validate a CAP 1.2 message and queue its alert (approval first where required).

    An Update or Cancel of an alert that was not sent yet (waiting for approval, or scheduled)
    replaces or withdraws it instead: it returns the replacement (on the approval path like any
    new alert) or the kept, unsent cancellation (see `outcome`).

    Raises CapError for invalid CAP and AlertError for a valid message we cannot broadcast.
    """
    cap = parse_cap(data)
    existing = await session.scalar(
        select(AlertRow.id).where(AlertRow.identifier == cap.identifier)
    )
    if existing is not None:
        raise service.AlertError(f"identifier {cap.identifier} was already imported as #{existing}")
    xml = cap_text(data)
    if cap.msg_type in ("Update", "Cancel"):
        original = await _referenced(session, cap)
        draft = draft_from_cap(cap, catalog) if cap.msg_type == "Update" else None
        if original.status in service.UNSENT:
            # Nobody has it yet: withdraw it, or put the update in its place. None: it started
            # sending meanwhile, and the update or cancellation goes to its recipients below.
            if draft is not None:
                draft.check(catalog, default_lang)
            successor = await service.supersede_unsent(
                session,
                original.id,
                draft,
                actor_id=actor_id,
                source=source,
                identifier=cap.identifier,
                cap_xml=xml,
            )
            if successor is not None and draft is None:
                return successor  # the cancellation, kept: there is nobody to send it to
            if successor is not None:
                return await service.submit(
                    session,
                    successor.id,
                    actor_id=actor_id,
                    approval_severities=approval_severities,
                )
        alert = await service.derive(
            session,
            original.id,
            AlertKind.UPDATE if cap.msg_type == "Update" else AlertKind.CANCEL,
            author_id=actor_id,
            content=draft.content if draft else None,
            severity=draft.severity if draft else None,
            expires_at=draft.expires_at if draft else None,
            source=source,
            identifier=cap.identifier,
            cap_xml=xml,
        )
    elif cap.msg_type == "Alert":
        draft = draft_from_cap(cap, catalog)
        draft.check(catalog, default_lang)
        alert = await service.create_draft(
            session,
            draft,
            author_id=actor_id,
            source=source,
            identifier=cap.identifier,
            cap_xml=xml,
        )
    else:
        raise service.AlertError(f"msgType {cap.msg_type} is not an alert to broadcast")
    return await service.submit(
        session, alert.id, actor_id=actor_id, approval_severities=approval_severities
    )


def outcome(alert: Alert) -> dict[str, object]:
    """What an import did, for the API's answer and the CLI: the alert's id and status, and
    which unsent alert it withdrew or replaced, if any."""
    out: dict[str, object] = {
        "alert_id": alert.id,
        "identifier": alert.identifier,
        "kind": alert.kind,
        "status": alert.status,
    }
    if alert.references_id is not None and alert.kind == AlertKind.CANCEL:
        if alert.status == AlertStatus.CANCELLED:
            out["withdrawn"] = alert.references_id
    elif alert.references_id is not None:
        out["replaces"] = alert.references_id
    return out


def describe(alert: Alert) -> str:
    """One line for the operator about an imported message."""
    done = outcome(alert)
    if "withdrawn" in done:
        return (
            f"alert #{done['withdrawn']} withdrawn before it was sent "
            f"(cancellation kept as #{alert.id}; nobody had received the alert)"
        )
    line = f"alert #{alert.id} ({alert.kind}, {alert.severity}): {alert.status}"
    if "replaces" in done:
        line += f", in place of #{done['replaces']}, which had not been sent"
    return line


async def _referenced(session: AsyncSession, cap: CapAlert) -> Alert:
    """The alert an Update or Cancel is about: its newest reference that is an alert, as that
    alert is now (an earlier update may have replaced it before it was sent)."""
    for ref in reversed(cap.references):
        found = await session.scalar(select(AlertRow).where(AlertRow.identifier == ref.identifier))
        if found is not None and found.kind == AlertKind.ALERT:
            return await service.current_version(session, found)
    raise service.AlertError(f"{cap.msg_type} refers to no alert we know")


def cap_from_alert(alert: Alert, catalog: Catalog, original: Alert | None = None) -> CapAlert:
    """The CAP 1.2 model of a stored alert (updates and cancels reference the original)."""
    cat = catalog.categories.get(alert.category)
    cap_category = cat.cap_category if cat else "Other"
    msg_type = {"alert": "Alert", "update": "Update", "cancel": "Cancel"}[alert.kind]
    references = []
    if original is not None:
        references.append(
            CapReference(service.SENDER, original.identifier, original.created_at.astimezone(UTC))
        )
    infos = []
    for lang, texts in alert.content.items():
        if not (texts or {}).get("headline"):
            continue
        area = CapArea(
            area_desc=catalog.districts_text(
                list(alert.districts), lang, "全市" if lang == "zh" else "All districts"
            ),
            geocodes=[
                CapValue(GEOCODE_NAME, code)
                for d in alert.districts
                for code in (catalog.districts[d].geocodes if d in catalog.districts else (d,))
            ],
        )
        infos.append(
            CapInfo(
                categories=[cap_category],  # type: ignore[list-item]
                event=catalog.category_name(alert.category, lang),
                urgency=alert.urgency,  # type: ignore[arg-type]
                severity=alert.severity,  # type: ignore[arg-type]
                certainty=alert.certainty,  # type: ignore[arg-type]
                language=CAP_LANG.get(lang, lang),
                expires=alert.expires_at,
                sender_name="Example City Public Security Bureau (sample)",
                headline=texts["headline"],
                description=texts.get("description") or None,
                instruction=texts.get("instruction") or None,
                areas=[area],
            )
        )
    return CapAlert(
        identifier=alert.identifier,
        sender=service.SENDER,
        sent=alert.created_at.astimezone(UTC),
        status="Actual",
        msg_type=msg_type,  # type: ignore[arg-type]
        scope="Public",
        references=references,
        infos=infos,
    )


async def export_cap(session: AsyncSession, alert_id: int, catalog: Catalog) -> bytes:
    """CAP 1.2 XML of one alert."""
    alert = await service.get_alert(session, alert_id)
    original = await session.get(Alert, alert.references_id) if alert.references_id else None
    return to_cap_xml(cap_from_alert(alert, catalog, original))

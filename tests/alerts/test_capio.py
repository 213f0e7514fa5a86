"""CAP 1.2 import onto the approval path, and export of every alert as valid CAP."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.alerts import service
from bot.alerts.cap import CapError, parse_cap
from bot.alerts.capio import describe, export_cap, import_cap, outcome
from bot.alerts.catalog import Catalog
from bot.db.models import Alert, AlertKind, AlertStatus, AuditLog, utcnow
from tests.support.alerts import cap_sample

DATA = Path(__file__).parent / "data"
APPROVAL = ["Extreme", "Severe"]


async def _import(
    session: AsyncSession, catalog: Catalog, data: bytes, approval: list[str]
) -> Alert:
    return await import_cap(session, data, catalog, default_lang="en", approval_severities=approval)


async def test_alert_update_cancel_chain(
    sessionmaker: async_sessionmaker[AsyncSession], catalog: Catalog
) -> None:
    async with sessionmaker() as session:
        alert = await _import(session, catalog, cap_sample("amber_alert.xml"), APPROVAL)
        assert alert.category == "missing-persons"
        assert alert.districts == ["riverside"]
        assert alert.severity == "Severe" and alert.status == AlertStatus.PENDING_APPROVAL
        assert {"en", "zh"} <= set(alert.content)
        assert alert.source == "cap" and alert.cap_xml and alert.created_by is None
        # A CAP alert needs the same second person; anyone on staff can approve it.
        await service.approve(session, alert.id, approver_id=9202)
        alert.status = AlertStatus.SENT  # as if delivered
        await session.commit()
        original_id = alert.id

        with pytest.raises(service.AlertError, match="already imported"):
            await _import(session, catalog, cap_sample("amber_alert.xml"), APPROVAL)
        update = await _import(session, catalog, cap_sample("amber_update.xml"), APPROVAL)
        assert update.kind == AlertKind.UPDATE and update.references_id == original_id
        assert "Harbour Road" in update.content["en"]["headline"]
        cancel = await _import(session, catalog, cap_sample("amber_cancel.xml"), APPROVAL)
        assert cancel.kind == AlertKind.CANCEL and cancel.status == AlertStatus.SCHEDULED
        await session.commit()

        # Export: valid CAP 1.2 that parses back, references included.
        exported = parse_cap(await export_cap(session, original_id, catalog))
        assert exported.identifier == "EXAMPLECITY-PSB-2026-11-21-0001"
        assert exported.msg_type == "Alert" and exported.infos[0].severity == "Severe"
        assert exported.infos[0].categories == ["Rescue"]
        codes = {g.value for g in exported.infos[0].areas[0].geocodes}
        assert codes == {"990102"}
        again = parse_cap(await export_cap(session, cancel.id, catalog))
        assert again.msg_type == "Cancel"
        assert again.references[0].identifier == "EXAMPLECITY-PSB-2026-11-21-0001"


async def test_wizard_alert_exports_and_reimports_to_the_same_alert(
    sessionmaker: async_sessionmaker[AsyncSession], catalog: Catalog
) -> None:
    draft = service.AlertDraft(
        category="traffic",
        severity="Minor",
        urgency="Expected",
        content={
            "en": {"headline": "Marathon <Sunday>", "description": "Roads & lanes"},
            "zh": {"headline": "马拉松"},
        },
        districts=["old-town"],
        expires_at=utcnow() + timedelta(hours=5),
    )
    async with sessionmaker() as session:
        alert = await service.create_draft(session, draft, author_id=1)
        xml = await export_cap(session, alert.id, catalog)
        cap = parse_cap(xml)
        assert [i.language for i in cap.infos] == ["en-US", "zh-CN"]
        assert cap.infos[0].headline == "Marathon <Sunday>"
        # Importing our own export under a new identifier gives the same alert.
        copy = await _import(
            session, catalog, xml.replace(alert.identifier.encode(), b"copy-1"), APPROVAL
        )
        assert (copy.category, copy.districts, copy.severity) == ("traffic", ["old-town"], "Minor")
        assert copy.content["en"]["headline"] == "Marathon <Sunday>"
        assert copy.status == AlertStatus.SCHEDULED


@pytest.mark.parametrize(
    "name",
    [
        "bad_severity.xml",
        "billion_laughs.xml",
        "external_entity.xml",
        "missing_identifier.xml",
        "wrong_namespace.xml",
    ],
)
async def test_invalid_cap_is_refused(
    sessionmaker: async_sessionmaker[AsyncSession], catalog: Catalog, name: str
) -> None:
    async with sessionmaker() as session:
        with pytest.raises(CapError):
            await _import(session, catalog, (DATA / "invalid" / name).read_bytes(), APPROVAL)


async def test_unbroadcastable_cap_is_explained(
    sessionmaker: async_sessionmaker[AsyncSession], catalog: Catalog
) -> None:
    text = cap_sample("severe_weather.xml").decode()
    async with sessionmaker() as session:
        with pytest.raises(service.AlertError, match="only Actual"):
            await _import(
                session, catalog, text.replace(">Actual<", ">Exercise<").encode(), APPROVAL
            )
        with pytest.raises(service.AlertError, match="refers to no alert"):
            await _import(session, catalog, cap_sample("amber_cancel.xml"), APPROVAL)


async def _actions(session: AsyncSession, alert_id: int) -> list[str]:
    rows = await session.scalars(
        select(AuditLog.action)
        .where(AuditLog.target_type == "alert", AuditLog.target_id == str(alert_id))
        .order_by(AuditLog.id)
    )
    return list(rows.all())


@pytest.mark.parametrize("approval", [APPROVAL, []], ids=["pending_approval", "scheduled"])
async def test_cancel_withdraws_an_alert_that_was_not_sent(
    sessionmaker: async_sessionmaker[AsyncSession], catalog: Catalog, approval: list[str]
) -> None:
    async with sessionmaker() as session:
        alert = await _import(session, catalog, cap_sample("amber_alert.xml"), approval)
        await session.commit()
        assert alert.status == (AlertStatus.PENDING_APPROVAL if approval else AlertStatus.SCHEDULED)
        cancel = await _import(session, catalog, cap_sample("amber_cancel.xml"), approval)
        await session.commit()
        assert cancel.kind == AlertKind.CANCEL and cancel.references_id == alert.id
        assert cancel.status == AlertStatus.CANCELLED  # nobody to tell: it is a record only
        assert cancel.identifier == "EXAMPLECITY-PSB-2026-11-21-0003" and cancel.cap_xml
        assert outcome(cancel)["withdrawn"] == alert.id
        assert "withdrawn before it was sent" in describe(cancel)
        original = await service.get_alert(session, alert.id)
        assert original.status == AlertStatus.CANCELLED
        assert "alert.withdraw" in await _actions(session, alert.id)
        # A cancelled alert can no longer be approved, nor started by the engine.
        with pytest.raises(service.AlertError, match="not waiting for approval"):
            await service.approve(session, alert.id, approver_id=9202)
        due = await session.scalars(select(Alert.id).where(Alert.status == AlertStatus.SCHEDULED))
        assert due.all() == []
        # The same cancellation twice is refused like any repeated identifier.
        with pytest.raises(service.AlertError, match="already imported"):
            await _import(session, catalog, cap_sample("amber_cancel.xml"), approval)


async def test_update_replaces_an_alert_that_was_not_sent(
    sessionmaker: async_sessionmaker[AsyncSession], catalog: Catalog
) -> None:
    async with sessionmaker() as session:
        alert = await _import(session, catalog, cap_sample("amber_alert.xml"), APPROVAL)
        # Approved and scheduled, but not started: new content needs a new approval.
        await service.approve(session, alert.id, approver_id=9202)
        await session.commit()
        assert alert.status == AlertStatus.SCHEDULED
        update = await _import(session, catalog, cap_sample("amber_update.xml"), APPROVAL)
        await session.commit()
        assert update.kind == AlertKind.ALERT and update.references_id == alert.id
        assert update.status == AlertStatus.PENDING_APPROVAL and update.approved_by is None
        assert "Harbour Road" in update.content["en"]["headline"]
        assert set(update.districts) == {"riverside", "harbour"}
        assert outcome(update)["replaces"] == alert.id
        assert (await service.get_alert(session, alert.id)).status == AlertStatus.CANCELLED
        assert "alert.replace" in await _actions(session, alert.id)
        with pytest.raises(service.AlertError):
            await service.approve(session, alert.id, approver_id=9203)

        # A cancellation that names only the first message reaches its replacement.
        only_first = cap_sample("amber_cancel.xml").replace(
            b" alerts@psb.example-city.example,EXAMPLECITY-PSB-2026-11-21-0002,"
            b"2026-11-21T12:30:00+08:00",
            b"",
        )
        assert b"-0002" not in only_first
        cancel = await _import(session, catalog, only_first, APPROVAL)
        await session.commit()
        assert cancel.references_id == update.id and cancel.status == AlertStatus.CANCELLED
        assert (await service.get_alert(session, update.id)).status == AlertStatus.CANCELLED


async def test_cancel_of_a_sent_alert_still_goes_to_its_recipients(
    sessionmaker: async_sessionmaker[AsyncSession], catalog: Catalog
) -> None:
    async with sessionmaker() as session:
        alert = await _import(session, catalog, cap_sample("amber_alert.xml"), [])
        alert.status = AlertStatus.SENT  # as if delivered
        await session.commit()
        cancel = await _import(session, catalog, cap_sample("amber_cancel.xml"), [])
        assert cancel.status == AlertStatus.SCHEDULED and "withdrawn" not in outcome(cancel)
        assert (await service.get_alert(session, alert.id)).status == AlertStatus.SENT

"""CAP 1.2 import onto the approval path, and export of every alert as valid CAP."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.alerts import service
from bot.alerts.cap import CapError, parse_cap
from bot.alerts.capio import export_cap, import_cap
from bot.alerts.catalog import Catalog
from bot.db.models import AlertKind, AlertStatus, utcnow

DATA = Path(__file__).parent / "data"
APPROVAL = ["Extreme", "Severe"]


def sample(name: str) -> bytes:
    """A sample with its expiry moved into the future, so the test does not age."""
    text = (DATA / name).read_text(encoding="utf-8")
    future = (utcnow() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S-00:00")
    return re.sub(r"(<(?:cap:)?expires>)[^<]+", rf"\g<1>{future}", text).encode()


async def test_alert_update_cancel_chain(
    sessionmaker: async_sessionmaker[AsyncSession], catalog: Catalog
) -> None:
    async with sessionmaker() as session:
        alert = await import_cap(
            session,
            sample("amber_alert.xml"),
            catalog,
            default_lang="en",
            approval_severities=APPROVAL,
        )
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
            await import_cap(
                session,
                sample("amber_alert.xml"),
                catalog,
                default_lang="en",
                approval_severities=APPROVAL,
            )
        update = await import_cap(
            session,
            sample("amber_update.xml"),
            catalog,
            default_lang="en",
            approval_severities=APPROVAL,
        )
        assert update.kind == AlertKind.UPDATE and update.references_id == original_id
        assert "Harbour Road" in update.content["en"]["headline"]
        cancel = await import_cap(
            session,
            sample("amber_cancel.xml"),
            catalog,
            default_lang="en",
            approval_severities=APPROVAL,
        )
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
        copy = await import_cap(
            session,
            xml.replace(alert.identifier.encode(), b"copy-1"),
            catalog,
            default_lang="en",
            approval_severities=APPROVAL,
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
            await import_cap(
                session,
                (DATA / "invalid" / name).read_bytes(),
                catalog,
                default_lang="en",
                approval_severities=APPROVAL,
            )


async def test_unbroadcastable_cap_is_explained(
    sessionmaker: async_sessionmaker[AsyncSession], catalog: Catalog
) -> None:
    text = sample("severe_weather.xml").decode()
    async with sessionmaker() as session:
        with pytest.raises(service.AlertError, match="only Actual"):
            await import_cap(
                session,
                text.replace(">Actual<", ">Exercise<").encode(),
                catalog,
                default_lang="en",
                approval_severities=APPROVAL,
            )
        with pytest.raises(service.AlertError, match="refers to no alert"):
            await import_cap(
                session,
                sample("amber_cancel.xml"),
                catalog,
                default_lang="en",
                approval_severities=APPROVAL,
            )

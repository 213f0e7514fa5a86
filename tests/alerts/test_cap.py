"""Tests for the CAP 1.2 parser and serializer against hand-written Example City samples."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from bot.alerts.cap import (
    CapAlert,
    CapArea,
    CapCircle,
    CapError,
    CapInfo,
    CapReference,
    CapValue,
    format_cap_datetime,
    parse_cap,
    to_cap_xml,
)

DATA = Path(__file__).parent / "data"
CST = timezone(timedelta(hours=8))
VALID = ["amber_alert.xml", "amber_update.xml", "amber_cancel.xml", "severe_weather.xml"]


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def mutate(name: str, old: str, new: str) -> bytes:
    text = load(name).decode()
    assert old in text, f"test fixture {name} lacks {old!r}"
    return text.replace(old, new, 1).encode()


def test_amber_alert_two_languages() -> None:
    alert = parse_cap(load("amber_alert.xml"))
    assert alert.identifier == "EXAMPLECITY-PSB-2026-11-21-0001"
    assert alert.sent == datetime(2026, 11, 21, 10, 0, tzinfo=CST)
    assert alert.sent.utcoffset() == timedelta(hours=8)
    assert (alert.status, alert.msg_type, alert.scope) == ("Actual", "Alert", "Public")
    assert alert.incidents == ["ECPSB-2026-4471", "Child Missing Riverside"]
    assert [info.language for info in alert.infos] == ["en-US", "zh-CN"]
    en, zh = alert.infos
    assert en.categories == ["Rescue"]
    assert (en.urgency, en.severity, en.certainty) == ("Immediate", "Severe", "Likely")
    assert en.description is not None and "red coat & yellow boots" in en.description
    assert en.event_codes == [CapValue("SAME", "CAE")]
    assert en.resources[0].size == 48213
    assert en.areas[0].geocodes == [("EXAMPLECITY-DISTRICT", "RIVERSIDE")]
    assert en.areas[0].circles == [CapCircle(31.2304, 121.4737, 5.0)]
    assert zh.headline == "儿童失踪警报：河畔区一名7岁女童走失"
    assert zh.expires == datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def test_info_for_picks_language() -> None:
    alert = parse_cap(load("amber_alert.xml"))
    assert alert.info_for("zh-CN") is alert.infos[1]
    assert alert.info_for("zh") is alert.infos[1]
    assert alert.info_for("zh_TW") is alert.infos[1]
    assert alert.info_for("en") is alert.infos[0]
    assert alert.info_for("fr-FR") is alert.infos[0]


def test_update_with_prefixed_namespace_and_reference() -> None:
    alert = parse_cap(load("amber_update.xml"))
    assert alert.msg_type == "Update"
    assert alert.references == [
        CapReference(
            "alerts@psb.example-city.example",
            "EXAMPLECITY-PSB-2026-11-21-0001",
            datetime(2026, 11, 21, 10, 0, tzinfo=CST),
        )
    ]
    assert [g.value for g in alert.infos[0].areas[0].geocodes] == ["RIVERSIDE", "HARBOUR"]


def test_cancel_references_both_earlier_messages() -> None:
    alert = parse_cap(load("amber_cancel.xml"))
    assert alert.msg_type == "Cancel"
    assert [ref.identifier for ref in alert.references] == [
        "EXAMPLECITY-PSB-2026-11-21-0001",
        "EXAMPLECITY-PSB-2026-11-21-0002",
    ]
    assert alert.infos[0].response_types == ["AllClear"]


def test_weather_polygon_and_utc_sent() -> None:
    alert = parse_cap(load("severe_weather.xml"))
    assert alert.sent == datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    info = alert.infos[0]
    assert info.language == "en-US"  # CAP default when <language> is absent
    assert info.categories == ["Met", "Safety"]
    assert info.severity == "Extreme"
    area = info.areas[0]
    assert area.polygons[0][0] == (31.10, 121.30)
    assert len(area.polygons[0]) == 5
    assert (area.altitude, area.ceiling) == (0.0, 3000.0)


@pytest.mark.parametrize("name", VALID)
def test_round_trip(name: str) -> None:
    alert = parse_cap(load(name))
    xml = to_cap_xml(alert)
    assert xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert b'xmlns="urn:oasis:names:tc:emergency:cap:1.2"' in xml
    again = parse_cap(xml)
    assert again == alert
    assert to_cap_xml(again) == xml


def test_serializer_writes_schema_order_and_cap_datetimes() -> None:
    alert = CapAlert(
        identifier="EXAMPLECITY-T-1",
        sender="alerts@psb.example-city.example",
        sent=datetime(2026, 11, 21, 2, 0, 0, 123456, tzinfo=UTC),
        status="Test",
        msg_type="Alert",
        scope="Public",
        note="Fictional test for Example City",
        infos=[
            CapInfo(
                categories=["Safety"],
                event="Drill",
                urgency="Future",
                severity="Minor",
                certainty="Possible",
                language="zh-CN",
                expires=datetime(2026, 11, 21, 20, 0, tzinfo=CST),
                headline="演练 <测试> & 通知",
                areas=[
                    CapArea(
                        "Example City",
                        polygons=[[(1e-05, 2.5), (1.0, 2.5), (1.0, 3.0), (1e-05, 2.5)]],
                    )
                ],
            )
        ],
    )
    xml = to_cap_xml(alert).decode()
    assert "<sent>2026-11-21T02:00:00-00:00</sent>" in xml
    assert "<expires>2026-11-21T20:00:00+08:00</expires>" in xml
    assert "演练 &lt;测试&gt; &amp; 通知" in xml
    assert "0.00001,2.5 1,2.5 1,3 0.00001,2.5" in xml
    order = ["<identifier>", "<sender>", "<sent>", "<status>", "<msgType>", "<scope>", "<note>"]
    positions = [xml.index(tag) for tag in order]
    assert positions == sorted(positions)
    info_order = ["<language>", "<category>", "<event>", "<urgency>", "<severity>", "<expires>"]
    positions = [xml.index(tag) for tag in info_order]
    assert positions == sorted(positions)
    parsed = parse_cap(xml.encode())
    # Microseconds are not representable in CAP, everything else survives.
    assert parsed == dataclasses.replace(alert, sent=alert.sent.replace(microsecond=0))


def test_format_cap_datetime_offsets() -> None:
    assert format_cap_datetime(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == (
        "2026-01-02T03:04:05-00:00"
    )
    west = timezone(-timedelta(hours=3, minutes=30))
    assert format_cap_datetime(datetime(2026, 1, 2, 3, 4, 5, tzinfo=west)) == (
        "2026-01-02T03:04:05-03:30"
    )
    with pytest.raises(CapError, match="timezone-aware"):
        format_cap_datetime(datetime(2026, 1, 2, 3, 4, 5))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing_identifier.xml", r"<alert/identifier> is required but missing"),
        ("bad_severity.xml", r"<info\[1\]/severity> must be one of .*'Catastrophic'"),
        ("billion_laughs.xml", r"contains a DTD.*entity-expansion"),
        ("external_entity.xml", r"contains a DTD.*external-entity"),
        ("wrong_namespace.xml", r"cap:1\.1.*CAP 1\.2 requires"),
    ],
)
def test_invalid_samples(name: str, message: str) -> None:
    with pytest.raises(CapError, match=message):
        parse_cap(load(f"invalid/{name}"))


def test_entities_without_doctype_never_expand() -> None:
    # An undefined entity cannot be resolved without a DTD: this must fail, not expand.
    data = mutate("amber_cancel.xml", "Child found safe.", "&xxe;")
    with pytest.raises(CapError, match="not well-formed"):
        parse_cap(data)


BAD_MUTATIONS = [
    (
        "amber_alert.xml",
        "2026-11-21T10:00:00+08:00</sent>",
        "2026-11-21T02:00:00Z</sent>",
        r"<sent> .*'Z' is not allowed",
    ),
    (
        "amber_alert.xml",
        "2026-11-21T10:00:00+08:00</sent>",
        "2026-11-21T10:00:00</sent>",
        r"<sent> must look like",
    ),
    (
        "amber_alert.xml",
        "2026-11-21T10:00:00+08:00</sent>",
        "2026-02-30T10:00:00+08:00</sent>",
        r"<sent> is not a real date-time",
    ),
    ("amber_alert.xml", "<status>Actual", "<status>Real", r"<alert/status> must be one of"),
    ("amber_alert.xml", "<msgType>Alert", "<msgType>Notice", r"<alert/msgType>"),
    ("amber_alert.xml", "<scope>Public", "<scope>Everyone", r"<alert/scope>"),
    ("amber_alert.xml", "<category>Rescue", "<category>Police", r"<info\[1\]/category>"),
    ("amber_alert.xml", "<urgency>Immediate", "<urgency>Now", r"<info\[1\]/urgency>"),
    ("amber_alert.xml", "<certainty>Likely", "<certainty>Sure", r"<info\[1\]/certainty>"),
    ("amber_alert.xml", "<responseType>Monitor", "<responseType>Run", r"responseType"),
    (
        "amber_alert.xml",
        "<identifier>EXAMPLECITY-PSB-2026-11-21-0001",
        "<identifier>EXAMPLECITY PSB,1",
        r"<identifier> must not contain spaces, commas",
    ),
    ("amber_alert.xml", "<event>Child Abduction Emergency</event>", "", r"<info\[1\]/event>"),
    (
        "amber_alert.xml",
        "<scope>Public</scope>",
        "<scope>Restricted</scope>",
        r"<restriction> is required",
    ),
    ("amber_alert.xml", "<scope>Public</scope>", "<scope>Private</scope>", r"<addresses>"),
    (
        "amber_alert.xml",
        "<sender>alerts@psb.example-city.example</sender>",
        "",
        r"<alert/sender> is required",
    ),
    (
        "amber_alert.xml",
        "<status>Actual</status>\n  <msgType>Alert</msgType>",
        "<msgType>Alert</msgType>\n  <status>Actual</status>",
        r"<alert/status> is out of order",
    ),
    ("amber_alert.xml", "<note>", "<colour>red</colour><note>", r"unknown element <colour>"),
    (
        "amber_alert.xml",
        "<note>",
        '<x:extra xmlns:x="urn:example">1</x:extra><note>',
        r"outside the CAP 1\.2 namespace",
    ),
    ("amber_alert.xml", "<size>48213", "<size>big", r"<info\[1\]/resource/size>"),
    ("amber_alert.xml", "<circle>31.2304,121.4737 5", "<circle>31.2304 5", r"circle"),
    ("amber_alert.xml", "<circle>31.2304,121.4737 5", "<circle>91,121 5", r"WGS 84"),
    (
        "severe_weather.xml",
        " 31.10,121.30</polygon>",
        "</polygon>",
        r"<info\[1\]/area\[1\]/polygon> must be closed",
    ),
    (
        "severe_weather.xml",
        "31.10,121.30 31.40,121.30 31.40,121.90 31.10,121.90 31.10,121.30",
        "31.10,121.30 31.40,121.30 31.10,121.30",
        r"at least 4 points",
    ),
    ("severe_weather.xml", "<altitude>0</altitude>", "", r"area\[1\]/ceiling> may only be used"),
    (
        "amber_update.xml",
        "<cap:references>alerts@psb.example-city.example,EXAMPLECITY-PSB-2026-11-21-0001,"
        "2026-11-21T10:00:00+08:00</cap:references>",
        "",
        r"<references> is required for msgType Update",
    ),
    (
        "amber_update.xml",
        ",2026-11-21T10:00:00+08:00</cap:references>",
        "</cap:references>",
        r"sender,identifier,sent",
    ),
    ("amber_cancel.xml", "<headline>", "<headline></headline><x>", r"not well-formed"),
    ("amber_cancel.xml", "<headline>AMBER", "<headline> <b>x</b> AMBER", r"text, not child"),
    ("amber_cancel.xml", "<note>Child found safe.</note>", "<note> </note>", r"must not be empty"),
    (
        "amber_cancel.xml",
        "<note>Child found safe.</note>",
        "<note>a</note><note>b</note>",
        r"<alert/note> may appear only once",
    ),
]


@pytest.mark.parametrize(("name", "old", "new", "message"), BAD_MUTATIONS)
def test_invalid_variants(name: str, old: str, new: str, message: str) -> None:
    with pytest.raises(CapError, match=message):
        parse_cap(mutate(name, old, new))


def test_not_xml_and_oversized() -> None:
    with pytest.raises(CapError, match="not well-formed"):
        parse_cap(b"this is not xml")
    with pytest.raises(CapError, match="root element must be <alert>"):
        parse_cap(b'<feed xmlns="http://www.w3.org/2005/Atom"/>')
    no_namespace = mutate(
        "amber_cancel.xml", '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">', "<alert>"
    )
    with pytest.raises(CapError, match="namespace 'none'"):
        parse_cap(no_namespace)
    with pytest.raises(CapError, match="limit"):
        parse_cap(load("amber_alert.xml"), max_bytes=100)


def test_signature_element_is_tolerated() -> None:
    signed = mutate(
        "amber_cancel.xml",
        "</alert>",
        '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo/></Signature></alert>',
    )
    assert parse_cap(signed) == parse_cap(load("amber_cancel.xml"))


def test_serializer_rejects_invalid_models() -> None:
    alert = parse_cap(load("amber_alert.xml"))
    with pytest.raises(CapError, match="timezone-aware"):
        to_cap_xml(dataclasses.replace(alert, sent=datetime(2026, 11, 21, 10, 0)))
    with pytest.raises(CapError, match="severity"):
        bad_info = dataclasses.replace(alert.infos[0], severity="Huge")  # type: ignore[arg-type]
        to_cap_xml(dataclasses.replace(alert, infos=[bad_info]))
    with pytest.raises(CapError, match="references"):
        to_cap_xml(dataclasses.replace(alert, msg_type="Cancel"))
    with pytest.raises(CapError, match="character XML cannot carry"):
        to_cap_xml(dataclasses.replace(alert, note="bell \x07"))


def test_times_without_a_utc_equivalent_or_expiring_before_sent_are_refused() -> None:
    with pytest.raises(CapError, match=r"<info\[1\]/expires> 9999-12-31T23:00:00-12:00 is beyond"):
        parse_cap(
            mutate(
                "amber_alert.xml",
                "<expires>2026-11-22T10:00:00+08:00",
                "<expires>9999-12-31T23:00:00-12:00",
            )
        )
    # The last representable day is fine where it is still that day in UTC.
    late = parse_cap(
        mutate(
            "amber_alert.xml",
            "<expires>2026-11-22T10:00:00+08:00",
            "<expires>9999-12-31T23:00:00+08:00",
        )
    )
    assert late.infos[0].expires == datetime(9999, 12, 31, 23, 0, tzinfo=CST)
    with pytest.raises(CapError, match=r"<info\[1\]/expires> .* is not after <sent>"):
        parse_cap(
            mutate(
                "amber_alert.xml",
                "<expires>2026-11-22T10:00:00+08:00",
                "<expires>2026-11-21T01:59:59-00:00",
            )
        )

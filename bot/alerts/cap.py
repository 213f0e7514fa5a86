"""OASIS Common Alerting Protocol (CAP) 1.2: typed model, safe parser and serializer.

The model mirrors the CAP 1.2 schema (``urn:oasis:names:tc:emergency:cap:1.2``) with Python
names (``msg_type`` for ``<msgType>``, ``area_desc`` for ``<areaDesc>`` …). ``parse_cap`` reads
untrusted bytes with defusedxml (no DTD, no entities, no external references) and checks
element order, required elements, code values, date-time format, references, polygons and
circles; every problem raises ``CapError`` naming the element. ``to_cap_xml`` runs the same
checks and writes elements in schema order, so its output parses back to an equal model.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal, NamedTuple, TypeVar, cast, get_args
from xml.etree.ElementTree import Element, ParseError, SubElement, tostring

import defusedxml.ElementTree as DefusedET
from defusedxml import (
    DefusedXmlException,
    DTDForbidden,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)

__all__ = [
    "CAP_NS",
    "CapAlert",
    "CapArea",
    "CapCircle",
    "CapError",
    "CapInfo",
    "CapReference",
    "CapResource",
    "CapValue",
    "cap_text",
    "format_cap_datetime",
    "parse_cap",
    "parse_cap_datetime",
    "to_cap_xml",
]

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
# The schema allows XML signatures (any element of this namespace) after the last <info>.
XMLDSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
# CAP messages are small; a cap stops memory abuse before the XML parser even starts. 1 MiB,
# the same as nginx's client_max_body_size for /api/cap (deploy/nginx/safewell.conf).
MAX_CAP_BYTES = 1024 * 1024

Status = Literal["Actual", "Exercise", "System", "Test", "Draft"]
MsgType = Literal["Alert", "Update", "Cancel", "Ack", "Error"]
Scope = Literal["Public", "Restricted", "Private"]
Category = Literal[
    "Geo",
    "Met",
    "Safety",
    "Security",
    "Rescue",
    "Fire",
    "Health",
    "Env",
    "Transport",
    "Infra",
    "CBRNE",
    "Other",
]
ResponseType = Literal[
    "Shelter",
    "Evacuate",
    "Prepare",
    "Execute",
    "Avoid",
    "Monitor",
    "Assess",
    "AllClear",
    "None",
]
Urgency = Literal["Immediate", "Expected", "Future", "Past", "Unknown"]
Severity = Literal["Extreme", "Severe", "Moderate", "Minor", "Unknown"]
Certainty = Literal["Observed", "Likely", "Possible", "Unlikely", "Unknown"]

STATUSES: tuple[str, ...] = get_args(Status)
MSG_TYPES: tuple[str, ...] = get_args(MsgType)
SCOPES: tuple[str, ...] = get_args(Scope)
CATEGORIES: tuple[str, ...] = get_args(Category)
RESPONSE_TYPES: tuple[str, ...] = get_args(ResponseType)
URGENCIES: tuple[str, ...] = get_args(Urgency)
SEVERITIES: tuple[str, ...] = get_args(Severity)
CERTAINTIES: tuple[str, ...] = get_args(Certainty)

# CAP 1.2 section 3.3.2: offset always present, "Z" forbidden, UTC written as "-00:00";
# the schema's pattern also rules out fractional seconds.
_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
# identifier and sender: no whitespace, commas, "<" or "&" (they are used inside <references>).
_FORBIDDEN_ID_RE = re.compile(r"[\s,<&]")
_QUOTED_LIST_RE = re.compile(r'"([^"]*)"|(\S+)')
# Characters that XML 1.0 cannot represent at all, even escaped.
_XML_INVALID_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class CapError(ValueError):
    """A CAP message is unsafe, malformed or breaks a CAP 1.2 rule; the message names where."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CapReference(NamedTuple):
    """One earlier message referred to by ``<references>``: sender, identifier, sent."""

    sender: str
    identifier: str
    sent: datetime


class CapValue(NamedTuple):
    """A ``valueName``/``value`` pair (geocode, parameter or eventCode)."""

    value_name: str
    value: str


class CapCircle(NamedTuple):
    """A ``<circle>``: WGS 84 centre and radius in kilometres."""

    lat: float
    lon: float
    radius_km: float


Point = tuple[float, float]


@dataclass
class CapResource:
    """A ``<resource>``: a file (image, audio, document) that goes with an info block."""

    resource_desc: str
    mime_type: str
    size: int | None = None
    uri: str | None = None
    deref_uri: str | None = None
    digest: str | None = None


@dataclass
class CapArea:
    """An ``<area>``: description plus optional polygons, circles, geocodes and altitudes."""

    area_desc: str
    polygons: list[list[Point]] = field(default_factory=list)
    circles: list[CapCircle] = field(default_factory=list)
    geocodes: list[CapValue] = field(default_factory=list)
    altitude: float | None = None
    ceiling: float | None = None


@dataclass
class CapInfo:
    """An ``<info>`` block: one language's description of the event."""

    categories: list[Category]
    event: str
    urgency: Urgency
    severity: Severity
    certainty: Certainty
    language: str = "en-US"
    response_types: list[ResponseType] = field(default_factory=list)
    audience: str | None = None
    event_codes: list[CapValue] = field(default_factory=list)
    effective: datetime | None = None
    onset: datetime | None = None
    expires: datetime | None = None
    sender_name: str | None = None
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    web: str | None = None
    contact: str | None = None
    parameters: list[CapValue] = field(default_factory=list)
    resources: list[CapResource] = field(default_factory=list)
    areas: list[CapArea] = field(default_factory=list)


@dataclass
class CapAlert:
    """A CAP 1.2 ``<alert>`` message."""

    identifier: str
    sender: str
    sent: datetime
    status: Status
    msg_type: MsgType
    scope: Scope
    source: str | None = None
    restriction: str | None = None
    addresses: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    note: str | None = None
    references: list[CapReference] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    infos: list[CapInfo] = field(default_factory=list)

    def info_for(self, language: str) -> CapInfo | None:
        """Best info block for a language: exact tag, then same primary subtag, then the first."""
        if not self.infos:
            return None
        wanted = language.lower().replace("_", "-")
        for info in self.infos:
            if info.language.lower() == wanted:
                return info
        primary = wanted.split("-")[0]
        for info in self.infos:
            if info.language.lower().split("-")[0] == primary:
                return info
        return self.infos[0]


# ---------------------------------------------------------------------------------------------
# Date-times and small value formats


def parse_cap_datetime(text: str, where: str) -> datetime:
    """Parse a CAP date-time such as 2026-11-21T10:00:00+08:00 (UTC is written -00:00)."""
    value = text.strip()
    if not _DATETIME_RE.match(value):
        hint = " ('Z' is not allowed; write UTC as -00:00)" if value.endswith("Z") else ""
        raise CapError(f"<{where}> must look like 2026-11-21T10:00:00+08:00, got {value!r}{hint}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CapError(f"<{where}> is not a real date-time: {value!r} ({exc})") from None
    try:
        # Times are compared and stored in UTC: one that has no UTC equivalent (9999-12-31
        # late in the evening at -12:00 is already year 10000) cannot be kept.
        parsed.astimezone(UTC)
    except OverflowError:
        raise CapError(
            f"<{where}> {value} is beyond the range of date-times (years 1 to 9999 in UTC)"
        ) from None
    return parsed


def format_cap_datetime(value: datetime, where: str = "datetime") -> str:
    """Format a timezone-aware datetime the CAP way (seconds precision, UTC as -00:00)."""
    offset = value.utcoffset()
    if offset is None:
        raise CapError(f"<{where}> needs a timezone-aware datetime, got naive {value!r}")
    if offset % timedelta(minutes=1):
        raise CapError(f"<{where}> has a UTC offset that is not whole minutes: {offset}")
    base = value.replace(microsecond=0, tzinfo=None).isoformat(timespec="seconds")
    if offset == timedelta(0):
        return base + "-00:00"
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(offset) // timedelta(minutes=1)
    return f"{base}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _format_number(value: float) -> str:
    # Shortest text that parses back to the same float, never in exponent form.
    text = format(Decimal(repr(float(value))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _parse_float(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CapError(f"<{where}> expects a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise CapError(f"<{where}> expects a finite number, got {text!r}")
    return value


def _parse_point(text: str, where: str) -> Point:
    parts = text.split(",")
    if len(parts) != 2:
        raise CapError(f"<{where}> expects 'latitude,longitude' pairs, got {text!r}")
    lat = _parse_float(parts[0], where)
    lon = _parse_float(parts[1], where)
    _check_point((lat, lon), where)
    return (lat, lon)


def _check_point(point: Point, where: str) -> None:
    lat, lon = point
    if not -90.0 <= lat <= 90.0 or not -180.0 <= lon <= 180.0:
        raise CapError(f"<{where}> has a point outside WGS 84 ranges: {lat},{lon}")


def _check_polygon(points: Sequence[Point], where: str) -> None:
    if len(points) < 4:
        raise CapError(f"<{where}> needs at least 4 points (first = last), got {len(points)}")
    if tuple(points[0]) != tuple(points[-1]):
        raise CapError(f"<{where}> must be closed: the first and last points must be equal")
    for point in points:
        _check_point(point, where)


def _parse_polygon(text: str, where: str) -> list[Point]:
    points = [_parse_point(pair, where) for pair in text.split()]
    _check_polygon(points, where)
    return points


def _format_polygon(points: Sequence[Point]) -> str:
    return " ".join(f"{_format_number(lat)},{_format_number(lon)}" for lat, lon in points)


def _parse_circle(text: str, where: str) -> CapCircle:
    parts = text.split()
    if len(parts) != 2:
        raise CapError(f"<{where}> expects 'latitude,longitude radius', got {text!r}")
    lat, lon = _parse_point(parts[0], where)
    circle = CapCircle(lat, lon, _parse_float(parts[1], where))
    _check_circle(circle, where)
    return circle


def _check_circle(circle: CapCircle, where: str) -> None:
    _check_point((circle.lat, circle.lon), where)
    if circle.radius_km < 0:
        raise CapError(f"<{where}> radius must not be negative, got {circle.radius_km}")


def _format_circle(circle: CapCircle) -> str:
    lat, lon, radius = circle
    return f"{_format_number(lat)},{_format_number(lon)} {_format_number(radius)}"


def _parse_quoted_list(text: str) -> list[str]:
    """Split a CAP space-delimited list where items with spaces are in double quotes."""
    return [quoted if quoted else bare for quoted, bare in _QUOTED_LIST_RE.findall(text)]


def _format_quoted_list(items: Iterable[str], where: str) -> str:
    out: list[str] = []
    for item in items:
        if not item or '"' in item:
            raise CapError(f"<{where}> items must be non-empty and contain no double quotes")
        out.append(f'"{item}"' if re.search(r"\s", item) else item)
    return " ".join(out)


def _parse_references(text: str) -> list[CapReference]:
    refs: list[CapReference] = []
    for triple in text.split():
        parts = triple.split(",")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise CapError(
                "<references> expects space-separated 'sender,identifier,sent' triples, "
                f"got {triple!r}"
            )
        refs.append(CapReference(parts[0], parts[1], parse_cap_datetime(parts[2], "references")))
    if not refs:
        raise CapError("<references> is present but empty")
    return refs


def _format_references(refs: Iterable[CapReference]) -> str:
    return " ".join(
        f"{ref.sender},{ref.identifier},{format_cap_datetime(ref.sent, 'references')}"
        for ref in refs
    )


# ---------------------------------------------------------------------------------------------
# Semantic checks shared by parse_cap and to_cap_xml

_T = TypeVar("_T", bound=str)


def _check_code(value: str, allowed: tuple[str, ...], where: str) -> None:
    if value not in allowed:
        raise CapError(f"<{where}> must be one of {', '.join(allowed)}; got {value!r}")


def _check_id(value: str, where: str) -> None:
    if not value:
        raise CapError(f"<{where}> must not be empty")
    if _FORBIDDEN_ID_RE.search(value):
        raise CapError(f"<{where}> must not contain spaces, commas, '<' or '&'; got {value!r}")


def _check_aware(value: datetime | None, where: str) -> None:
    if value is not None:
        format_cap_datetime(value, where)


def _check_alert(alert: CapAlert) -> None:
    _check_id(alert.identifier, "identifier")
    _check_id(alert.sender, "sender")
    _check_aware(alert.sent, "sent")
    _check_code(alert.status, STATUSES, "status")
    _check_code(alert.msg_type, MSG_TYPES, "msgType")
    _check_code(alert.scope, SCOPES, "scope")
    if alert.scope == "Restricted" and not alert.restriction:
        raise CapError("<restriction> is required when <scope> is Restricted")
    if alert.scope == "Private" and not alert.addresses:
        raise CapError("<addresses> is required when <scope> is Private")
    if alert.msg_type in ("Update", "Cancel", "Ack", "Error") and not alert.references:
        raise CapError(
            f"<references> is required for msgType {alert.msg_type}: "
            "name the earlier message(s) it updates, cancels or answers"
        )
    for ref in alert.references:
        _check_id(ref.sender, "references")
        _check_id(ref.identifier, "references")
        _check_aware(ref.sent, "references")
    for i, info in enumerate(alert.infos, 1):
        _check_info(info, f"info[{i}]")


def _check_info(info: CapInfo, where: str) -> None:
    if not info.language or re.search(r"\s", info.language):
        raise CapError(
            f"<{where}/language> must be a language tag like en-US, got {info.language!r}"
        )
    if not info.categories:
        raise CapError(f"<{where}/category> is required (at least one)")
    for category in info.categories:
        _check_code(category, CATEGORIES, f"{where}/category")
    if not info.event:
        raise CapError(f"<{where}/event> is required")
    for response in info.response_types:
        _check_code(response, RESPONSE_TYPES, f"{where}/responseType")
    _check_code(info.urgency, URGENCIES, f"{where}/urgency")
    _check_code(info.severity, SEVERITIES, f"{where}/severity")
    _check_code(info.certainty, CERTAINTIES, f"{where}/certainty")
    for name in ("effective", "onset", "expires"):
        _check_aware(getattr(info, name), f"{where}/{name}")
    for resource in info.resources:
        if not resource.resource_desc or not resource.mime_type:
            raise CapError(f"<{where}/resource> needs <resourceDesc> and <mimeType>")
        if resource.size is not None and resource.size < 0:
            raise CapError(f"<{where}/resource/size> must not be negative")
    for j, area in enumerate(info.areas, 1):
        area_where = f"{where}/area[{j}]"
        if not area.area_desc:
            raise CapError(f"<{area_where}/areaDesc> is required")
        for polygon in area.polygons:
            _check_polygon(polygon, f"{area_where}/polygon")
        for circle in area.circles:
            _check_circle(circle, f"{area_where}/circle")
        if area.ceiling is not None and area.altitude is None:
            raise CapError(f"<{area_where}/ceiling> may only be used together with <altitude>")


# ---------------------------------------------------------------------------------------------
# Parsing


def _split_tag(tag: str) -> tuple[str, str]:
    """ElementTree's "{namespace}local" as (namespace, local); no namespace gives ""."""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


class _Reader:
    """Walks the children of one element in schema order, naming elements in errors."""

    def __init__(self, element: Element, where: str, order: Sequence[str]) -> None:
        self.where = where
        self.children: list[tuple[str, Element]] = []
        rank = {name: i for i, name in enumerate(order)}
        last = -1
        last_name = ""
        for child in element:
            if not isinstance(child.tag, str):
                continue  # comments and processing instructions
            ns, local = _split_tag(child.tag)
            if ns == XMLDSIG_NS and where == "alert":
                continue  # an enveloped signature; verifying it is the transport's job
            if ns != CAP_NS:
                raise CapError(
                    f"<{where}> contains <{local}> outside the CAP 1.2 namespace ({ns or 'none'})"
                )
            if local not in rank:
                raise CapError(f"<{where}> contains unknown element <{local}>")
            if rank[local] < last:
                raise CapError(
                    f"<{where}/{local}> is out of order: it must come before <{last_name}>"
                )
            last, last_name = rank[local], local
            self.children.append((local, child))

    def all(self, name: str) -> list[Element]:
        return [el for local, el in self.children if local == name]

    def texts(self, name: str) -> list[str]:
        return [self._text(el, name) for el in self.all(name)]

    def opt(self, name: str) -> str | None:
        found = self.texts(name)
        if len(found) > 1:
            raise CapError(f"<{self.where}/{name}> may appear only once")
        return found[0] if found else None

    def req(self, name: str) -> str:
        value = self.opt(name)
        if value is None:
            raise CapError(f"<{self.where}/{name}> is required but missing")
        return value

    def _text(self, element: Element, name: str) -> str:
        if len(element):
            raise CapError(f"<{self.where}/{name}> must contain text, not child elements")
        value = (element.text or "").strip()
        if not value:
            raise CapError(f"<{self.where}/{name}> must not be empty")
        return value

    def opt_datetime(self, name: str) -> datetime | None:
        value = self.opt(name)
        return None if value is None else parse_cap_datetime(value, f"{self.where}/{name}")

    def code(self, name: str, allowed: tuple[str, ...], convert: Callable[[str], _T]) -> _T:
        value = self.req(name)
        _check_code(value, allowed, f"{self.where}/{name}")
        return convert(value)

    def values(self, name: str) -> list[CapValue]:
        out: list[CapValue] = []
        for element in self.all(name):
            sub = _Reader(element, f"{self.where}/{name}", ("valueName", "value"))
            out.append(CapValue(sub.req("valueName"), sub.req("value")))
        return out


_ALERT_ORDER = (
    "identifier",
    "sender",
    "sent",
    "status",
    "msgType",
    "source",
    "scope",
    "restriction",
    "addresses",
    "code",
    "note",
    "references",
    "incidents",
    "info",
)
_INFO_ORDER = (
    "language",
    "category",
    "event",
    "responseType",
    "urgency",
    "severity",
    "certainty",
    "audience",
    "eventCode",
    "effective",
    "onset",
    "expires",
    "senderName",
    "headline",
    "description",
    "instruction",
    "web",
    "contact",
    "parameter",
    "resource",
    "area",
)
_RESOURCE_ORDER = ("resourceDesc", "mimeType", "size", "uri", "derefUri", "digest")
_AREA_ORDER = ("areaDesc", "polygon", "circle", "geocode", "altitude", "ceiling")


def _check_times(alert: CapAlert) -> None:
    """An incoming message's expiry must come after its sending (a typo, or the wrong offset,
    would otherwise be broadcast as an alert that has already expired when it is issued)."""
    sent = format_cap_datetime(alert.sent, "sent")
    for i, info in enumerate(alert.infos, 1):
        if info.expires is not None and info.expires <= alert.sent:
            raise CapError(
                f"<info[{i}]/expires> {format_cap_datetime(info.expires, 'expires')} is not "
                f"after <sent> {sent}: the alert would expire before it was issued"
            )


_DECLARED_ENCODING_RE = re.compile(rb"""<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z][\w.-]*)["']""")


def cap_text(data: bytes) -> str:
    """The text of a CAP document that `parse_cap` accepted, decoded as the XML parser did:
    by its byte order mark, else UTF-16 by its first bytes, else the encoding its XML
    declaration names, else UTF-8. For keeping the message as it came."""
    for bom in (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        if data.startswith(bom):
            return data.decode("utf-8-sig" if bom == codecs.BOM_UTF8 else "utf-16", "replace")
    if data.startswith(b"<\x00"):
        encoding = "utf-16-le"
    elif data.startswith(b"\x00<"):
        encoding = "utf-16-be"
    else:
        declared = _DECLARED_ENCODING_RE.match(data)
        encoding = declared.group(1).decode("ascii") if declared else "utf-8"
    try:
        return data.decode(encoding, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def parse_cap(data: bytes, *, max_bytes: int = MAX_CAP_BYTES) -> CapAlert:
    """Parse and validate an untrusted CAP 1.2 XML document; raise CapError on any problem."""
    if len(data) > max_bytes:
        raise CapError(f"CAP message is {len(data)} bytes; the limit is {max_bytes}")
    try:
        root = DefusedET.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DTDForbidden:
        raise CapError(
            "CAP message rejected: it contains a DTD (<!DOCTYPE>), which CAP never needs "
            "and which can hide entity-expansion or external-entity attacks"
        ) from None
    except EntitiesForbidden:
        raise CapError(
            "CAP message rejected: it declares XML entities (possible entity-expansion "
            "'billion laughs' attack)"
        ) from None
    except ExternalReferenceForbidden:
        raise CapError(
            "CAP message rejected: it refers to an external entity or DTD (possible XXE attack)"
        ) from None
    except DefusedXmlException as exc:
        raise CapError(f"CAP message rejected as unsafe XML: {exc}") from None
    except ParseError as exc:
        raise CapError(f"CAP message is not well-formed XML: {exc}") from None

    root_ns, root_local = _split_tag(root.tag)
    if root_local != "alert":
        raise CapError(f"the root element must be <alert> in {CAP_NS!r}, got <{root_local}>")
    if root_ns != CAP_NS:
        raise CapError(
            f"<alert> is in namespace {root_ns or 'none'!r}; CAP 1.2 requires {CAP_NS!r}"
        )

    r = _Reader(root, "alert", _ALERT_ORDER)
    refs_text = r.opt("references")
    incidents_text = r.opt("incidents")
    addresses_text = r.opt("addresses")
    alert = CapAlert(
        identifier=r.req("identifier"),
        sender=r.req("sender"),
        sent=parse_cap_datetime(r.req("sent"), "sent"),
        status=r.code("status", STATUSES, lambda v: cast(Status, v)),
        msg_type=r.code("msgType", MSG_TYPES, lambda v: cast(MsgType, v)),
        source=r.opt("source"),
        scope=r.code("scope", SCOPES, lambda v: cast(Scope, v)),
        restriction=r.opt("restriction"),
        addresses=_parse_quoted_list(addresses_text) if addresses_text else [],
        codes=r.texts("code"),
        note=r.opt("note"),
        references=_parse_references(refs_text) if refs_text is not None else [],
        incidents=_parse_quoted_list(incidents_text) if incidents_text else [],
        infos=[_parse_info(el, f"info[{i}]") for i, el in enumerate(r.all("info"), 1)],
    )
    _check_alert(alert)
    _check_times(alert)
    return alert


def _parse_info(element: Element, where: str) -> CapInfo:
    r = _Reader(element, where, _INFO_ORDER)
    categories = r.texts("category")
    if not categories:
        raise CapError(f"<{where}/category> is required (at least one)")
    for category in categories:
        _check_code(category, CATEGORIES, f"{where}/category")
    responses = r.texts("responseType")
    for response in responses:
        _check_code(response, RESPONSE_TYPES, f"{where}/responseType")
    return CapInfo(
        language=r.opt("language") or "en-US",
        categories=[cast(Category, c) for c in categories],
        event=r.req("event"),
        response_types=[cast(ResponseType, x) for x in responses],
        urgency=r.code("urgency", URGENCIES, lambda v: cast(Urgency, v)),
        severity=r.code("severity", SEVERITIES, lambda v: cast(Severity, v)),
        certainty=r.code("certainty", CERTAINTIES, lambda v: cast(Certainty, v)),
        audience=r.opt("audience"),
        event_codes=r.values("eventCode"),
        effective=r.opt_datetime("effective"),
        onset=r.opt_datetime("onset"),
        expires=r.opt_datetime("expires"),
        sender_name=r.opt("senderName"),
        headline=r.opt("headline"),
        description=r.opt("description"),
        instruction=r.opt("instruction"),
        web=r.opt("web"),
        contact=r.opt("contact"),
        parameters=r.values("parameter"),
        resources=[_parse_resource(el, f"{where}/resource") for el in r.all("resource")],
        areas=[_parse_area(el, f"{where}/area[{j}]") for j, el in enumerate(r.all("area"), 1)],
    )


def _parse_resource(element: Element, where: str) -> CapResource:
    r = _Reader(element, where, _RESOURCE_ORDER)
    size_text = r.opt("size")
    if size_text is not None and not size_text.isdigit():
        raise CapError(f"<{where}/size> must be a whole number of bytes, got {size_text!r}")
    return CapResource(
        resource_desc=r.req("resourceDesc"),
        mime_type=r.req("mimeType"),
        size=int(size_text) if size_text is not None else None,
        uri=r.opt("uri"),
        deref_uri=r.opt("derefUri"),
        digest=r.opt("digest"),
    )


def _parse_area(element: Element, where: str) -> CapArea:
    r = _Reader(element, where, _AREA_ORDER)
    altitude = r.opt("altitude")
    ceiling = r.opt("ceiling")
    return CapArea(
        area_desc=r.req("areaDesc"),
        polygons=[_parse_polygon(t, f"{where}/polygon") for t in r.texts("polygon")],
        circles=[_parse_circle(t, f"{where}/circle") for t in r.texts("circle")],
        geocodes=r.values("geocode"),
        altitude=_parse_float(altitude, f"{where}/altitude") if altitude is not None else None,
        ceiling=_parse_float(ceiling, f"{where}/ceiling") if ceiling is not None else None,
    )


# ---------------------------------------------------------------------------------------------
# Serializing


def _q(name: str) -> str:
    return f"{{{CAP_NS}}}{name}"


def _add(parent: Element, name: str, value: str | None) -> None:
    if value is None:
        return
    # XML parsers turn CR LF into LF and parse_cap strips outer whitespace: do the same here
    # so that what we write reads back identically.
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise CapError(f"<{name}> must not be empty")
    bad = _XML_INVALID_RE.search(text)
    if bad:
        raise CapError(f"<{name}> contains a character XML cannot carry: {bad.group()!r}")
    SubElement(parent, _q(name)).text = text


def _add_values(parent: Element, name: str, values: Iterable[CapValue]) -> None:
    for value_name, value in values:
        holder = SubElement(parent, _q(name))
        _add(holder, "valueName", value_name)
        _add(holder, "value", value)


def _add_datetime(parent: Element, name: str, value: datetime | None) -> None:
    if value is not None:
        _add(parent, name, format_cap_datetime(value, name))


def to_cap_xml(alert: CapAlert) -> bytes:
    """Serialize a CapAlert to CAP 1.2 XML (UTF-8, schema element order); raise CapError."""
    _check_alert(alert)
    root = Element(_q("alert"))
    _add(root, "identifier", alert.identifier)
    _add(root, "sender", alert.sender)
    _add_datetime(root, "sent", alert.sent)
    _add(root, "status", alert.status)
    _add(root, "msgType", alert.msg_type)
    _add(root, "source", alert.source)
    _add(root, "scope", alert.scope)
    _add(root, "restriction", alert.restriction)
    if alert.addresses:
        _add(root, "addresses", _format_quoted_list(alert.addresses, "addresses"))
    for code in alert.codes:
        _add(root, "code", code)
    _add(root, "note", alert.note)
    if alert.references:
        _add(root, "references", _format_references(alert.references))
    if alert.incidents:
        _add(root, "incidents", _format_quoted_list(alert.incidents, "incidents"))
    for info in alert.infos:
        _add_info(root, info)
    body = tostring(root, encoding="unicode", default_namespace=CAP_NS)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body.encode("utf-8")


def _add_info(root: Element, info: CapInfo) -> None:
    el = SubElement(root, _q("info"))
    _add(el, "language", info.language)
    for category in info.categories:
        _add(el, "category", category)
    _add(el, "event", info.event)
    for response in info.response_types:
        _add(el, "responseType", response)
    _add(el, "urgency", info.urgency)
    _add(el, "severity", info.severity)
    _add(el, "certainty", info.certainty)
    _add(el, "audience", info.audience)
    _add_values(el, "eventCode", info.event_codes)
    _add_datetime(el, "effective", info.effective)
    _add_datetime(el, "onset", info.onset)
    _add_datetime(el, "expires", info.expires)
    _add(el, "senderName", info.sender_name)
    _add(el, "headline", info.headline)
    _add(el, "description", info.description)
    _add(el, "instruction", info.instruction)
    _add(el, "web", info.web)
    _add(el, "contact", info.contact)
    _add_values(el, "parameter", info.parameters)
    for resource in info.resources:
        res = SubElement(el, _q("resource"))
        _add(res, "resourceDesc", resource.resource_desc)
        _add(res, "mimeType", resource.mime_type)
        _add(res, "size", None if resource.size is None else str(resource.size))
        _add(res, "uri", resource.uri)
        _add(res, "derefUri", resource.deref_uri)
        _add(res, "digest", resource.digest)
    for area in info.areas:
        ar = SubElement(el, _q("area"))
        _add(ar, "areaDesc", area.area_desc)
        for polygon in area.polygons:
            _add(ar, "polygon", _format_polygon(polygon))
        for circle in area.circles:
            _add(ar, "circle", _format_circle(circle))
        _add_values(ar, "geocode", area.geocodes)
        if area.altitude is not None:
            _add(ar, "altitude", _format_number(area.altitude))
        if area.ceiling is not None:
            _add(ar, "ceiling", _format_number(area.ceiling))

"""Reading feed values, shared by every adapter: text, numbers, timestamps, paths.

Real feeds write the same value in many ways: ``12``, ``"12"``, ``"12,5"``, ``"1 234"``,
``"1.234,5"``; ``1760776294`` (epoch seconds), ``1760776294000`` (milliseconds),
``"2019-12-11T22:30:18.501+00:00"``, ``"2025-11-04T17:24:00Z"``, ``"04/11/2025 17:30:05"``
or ``"Mon, 15 Jul 2019 21:12:00 +0200"`` in local time. One reader per kind of value
accepts all of them, with one contract:

* ``None``, ``""`` and blank strings mean *absent* and give ``None``;
* anything else that cannot be read raises ``ValueError`` with a message fit for a
  ``Rejected`` reason, so the adapter decides whether the record is still usable.

Coordinates and geometries live in ``geo.py``. Nothing here does I/O.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ingest.records import PayloadError

__all__ = [
    "address_text",
    "blank",
    "clean_text",
    "decode_text",
    "error_reason",
    "get_path",
    "load_json",
    "member",
    "parse_float",
    "parse_int",
    "parse_iso_timestamp",
    "parse_path",
    "parse_timestamp",
    "text",
    "walk_path",
    "zone",
]


# --- text ------------------------------------------------------------------------------------


def blank(value: Any) -> bool:
    """True for the ways feeds say "no value": None, empty or blank strings, NaN."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, float):
        return math.isnan(value)
    return False


def text(value: Any) -> str | None:
    """A stripped string (identifiers, names), or None when absent or not a scalar.

    Integral floats lose their '.0': Esri and some JSON encoders write ids as doubles.
    """
    if blank(value) or isinstance(value, dict | list):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def clean_text(value: Any) -> str | None:
    """Display text on one line: line breaks become ', ', runs of blanks one space."""
    if value is None or isinstance(value, dict | list | bool):
        return None
    cleaned = re.sub(r"\s*\n\s*", ", ", str(value).strip())
    cleaned = re.sub(r"[ \t]+", " ", cleaned).strip(" ,")
    return cleaned or None


_ADDRESS_PARTS = (
    "streetAddress", "street", "street1", "street2", "houseNumber", "postalCode", "zip",
    "addressLocality", "city", "locality",
)  # fmt: skip


def address_text(value: Any) -> str | None:
    """Address strings pass; address objects (schema.org PostalAddress and the like) are joined."""
    if isinstance(value, dict):
        parts = [value.get(key) for key in _ADDRESS_PARTS]
        joined = " ".join(str(part).strip() for part in parts if part not in (None, ""))
        return clean_text(joined) or clean_text(value.get("name") or value.get("label"))
    return clean_text(value)


def decode_text(body: bytes) -> str:
    """A text payload (CSV, loose JSON): UTF-8 with or without BOM, else Windows-1252.

    Older editions of several city files are Latin-1/cp1252; reading them as such keeps
    accented names rather than refusing the file.
    """
    if body[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 with its BOM (spreadsheet "Unicode text")
        return body.decode("utf-16", errors="replace")
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return body.decode("cp1252", errors="replace")


def load_json(body: bytes | str, what: str) -> Any:
    """The JSON document of a payload (UTF-8/16/32, BOM or not); PayloadError naming ``what``."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"{what} is not valid JSON: {exc}") from exc


# --- numbers ---------------------------------------------------------------------------------

_SPACES = re.compile(r"[\s\u00a0\u202f']")
_DIGIT = re.compile(r"\d")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def parse_float(value: Any, *, lenient: bool = False) -> float | None:
    """Read a number written as int, float or string ('12,5', '1 234.5', '1.234,5', '1,234.5').

    With ``lenient`` (values found by a configured path in a home-grown feed), values
    that carry no number at all are absent rather than errors: text without any digit
    ('???', '-', 'n/a'), objects and lists; true/false count as 1/0 (single-spot
    sensors). Text with digits that still is not a number ('12a') is an error either way.
    """
    if isinstance(value, str):
        try:
            number = float(value)  # the common case, without the separator work below
        except ValueError:
            pass
        else:
            return _finite(number, value)
        raw = value.strip()
        if not raw:
            return None
        if lenient and not _DIGIT.search(raw):
            return None
        raw = _SPACES.sub("", raw)
        if "," in raw and "." in raw:
            # Whichever separator comes last is the decimal one: '1.234,5' or '1,234.5'.
            if raw.rfind(",") > raw.rfind("."):
                raw = raw.replace(".", "").replace(",", ".")
            else:
                raw = raw.replace(",", "")
        elif raw.count(",") == 1:
            raw = raw.replace(",", ".")
        if not _PLAIN_NUMBER.fullmatch(raw):
            if raw.lower() == "nan":
                return None
            raise ValueError(f"{value!r} is not a number")
        return _finite(float(raw), value)
    if value is None:
        return None
    if isinstance(value, bool):
        if lenient:
            return float(value)
        raise ValueError(f"expected a number, got boolean {value!r}")
    if isinstance(value, int | float):
        return _finite(float(value), value)
    if lenient and isinstance(value, dict | list):
        return None
    raise ValueError(f"expected a number, got {type(value).__name__} {value!r}")


def _finite(number: float, value: Any) -> float | None:
    if math.isnan(number):
        return None
    if math.isinf(number):
        raise ValueError(f"not a finite number: {value!r}")
    return number


def parse_int(value: Any, *, lenient: bool = False, rounded: bool = False) -> int | None:
    """Read a count: like ``parse_float`` but whole ('12', 12.0, '12,0').

    A fraction is an error unless ``rounded`` (feeds that average counts over an interval).
    """
    number = parse_float(value, lenient=lenient)
    if number is None:
        return None
    if not number.is_integer():
        if rounded:
            return round(number)
        raise ValueError(f"expected a whole number, got {value!r}")
    return int(number)


# --- timestamps ------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def zone(name: str) -> tzinfo:
    """The tzinfo of an IANA name ('Europe/Madrid'); ValueError for unknown names."""
    if name.strip().upper() in ("UTC", "Z", "GMT"):
        return UTC
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


# Epoch values above this are milliseconds: 1e11 seconds is the year 5138, 1e11 ms is 1973.
_EPOCH_MS_THRESHOLD = 1e11
# 9 to 13 digits: epoch seconds or milliseconds; 14 digits is a compact yyyymmddHHMMSS.
_EPOCH_TEXT = re.compile(r"\d{9,13}(\.\d+)?")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d")

_MONTHS = {
    # fr
    "janvier": 1, "janv": 1, "février": 2, "fevrier": 2, "févr": 2, "fevr": 2, "mars": 3, "avril": 4,
    "avr": 4, "mai": 5, "juin": 6, "juillet": 7, "juil": 7, "août": 8, "aout": 8, "septembre": 9,
    "octobre": 10, "novembre": 11, "décembre": 12, "decembre": 12, "déc": 12,
    # de
    "januar": 1, "jänner": 1, "februar": 2, "märz": 3, "maerz": 3, "april": 4, "juni": 6, "juli": 7,
    "august": 8, "oktober": 10, "dezember": 12, "okt": 10, "dez": 12, "mär": 3,
    # en
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "apr": 4, "may": 5,
    "june": 6, "jun": 6, "july": 7, "jul": 7, "aug": 8, "september": 9, "sep": 9, "sept": 9,
    "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
    # it / es
    "gennaio": 1, "febbraio": 2, "marzo": 3, "aprile": 4, "maggio": 5, "giugno": 6, "luglio": 7,
    "agosto": 8, "settembre": 9, "ottobre": 10, "dicembre": 12, "enero": 1, "febrero": 2,
    "abril": 4, "mayo": 5, "junio": 6, "julio": 7, "septiembre": 9, "octubre": 10,
    "noviembre": 11, "diciembre": 12,
}  # fmt: skip

_DAY_FIRST_DOTS = re.compile(
    r"^(\d{1,2})\.(\d{1,2})\.(\d{2,4})(?:[,\s]+(?:um\s+)?(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*(?:uhr)?$", re.I
)
_MONTH_NAME = re.compile(
    r"(\d{1,2})\.?\s+([^\W\d_]+)\.?\s+(\d{4})(?:\D+(\d{1,2})[:h](\d{2})(?::(\d{2}))?)?", re.I
)
_ISO_LOOSE = re.compile(r"^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d(?::\d\d)?)(\.\d+)?\s*(Z|[+-]\d\d:?\d\d)?$")
_DAY_FIRST_FORMATS = ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%Y/%m/%d %H:%M:%S", "%d-%m-%Y %H:%M:%S")


def parse_timestamp(value: Any, tz: str | tzinfo = UTC, fmt: str | None = None) -> datetime | None:
    """Read a timestamp and return it timezone-aware in UTC.

    Accepts ``datetime``; epoch seconds or milliseconds (numbers or 9-13 digit strings);
    ISO 8601 with 'Z', an offset or none, any number of fractional digits, ' ' or 'T'
    (an ISO interval 'start/end' gives its end, the end of the period observed);
    RFC 2822; day-first forms ('30.10.2023 11:40', '11.03.2022, 21:05 Uhr',
    '04/11/2025 17:30:05'); dates with month names in fr/de/en/it/es ('3. März 2024 um
    14:30'). Naive times are in ``tz`` (a tzinfo or an IANA name such as
    'Europe/Madrid'); ``fmt`` is a strptime format tried first.
    """
    parsed: datetime | None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        raw = value.strip()
        if not raw:
            return None
        parsed = _strptime(raw, fmt) if fmt else None
        if parsed is None:
            if _EPOCH_TEXT.fullmatch(raw):
                return _from_epoch(float(raw), value)
            parsed = _parse_text(raw)
    elif value is None:
        return None
    elif isinstance(value, bool):
        raise ValueError(f"expected a timestamp, got boolean {value!r}")
    elif isinstance(value, int | float):
        if math.isnan(value):
            return None
        return _from_epoch(float(value), value)
    else:
        raise ValueError(f"expected a timestamp, got {type(value).__name__} {value!r}")
    return _in_utc(parsed, tz)


def parse_iso_timestamp(value: str | None, tz: str | tzinfo = UTC) -> datetime | None:
    """Only ISO 8601 / xs:dateTime ('Z', offsets, any fraction): for schema-typed formats
    (DATEX II) where anything else is a producer error to report, not a form to guess."""
    if value is None or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 date-time") from None
    return _in_utc(parsed, tz)


def _in_utc(parsed: datetime, tz: str | tzinfo) -> datetime:
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone(tz) if isinstance(tz, str) else tz)
    return parsed.astimezone(UTC)


def _from_epoch(seconds: float, value: Any) -> datetime:
    if seconds > _EPOCH_MS_THRESHOLD:  # milliseconds (ArcGIS, Java, GBFS v3 in places)
        seconds /= 1000.0
    try:
        return _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"epoch time {value!r} is out of range") from None


def _strptime(raw: str, fmt: str) -> datetime | None:
    try:
        return datetime.strptime(raw, fmt)
    except ValueError:
        return None  # a feed that changes its format is still read when the value is unambiguous


def _parse_text(raw: str) -> datetime:
    iso = raw
    if "/" in iso and _ISO_DATE.match(iso):
        iso = iso.rsplit("/", 1)[1]
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        pass
    parsed = _parse_loose(raw)
    if parsed is None:
        raise ValueError(f"unreadable timestamp {raw!r}")
    return parsed


def _parse_loose(raw: str) -> datetime | None:
    try:
        return email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        pass
    try:
        match = _DAY_FIRST_DOTS.match(raw)
        if match:
            day, month, year, hour, minute, second = match.groups()
            year_i = int(year) + (2000 if len(year) == 2 else 0)
            return datetime(year_i, int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
        match = _MONTH_NAME.search(raw)
        if match:
            day, month_name, year, hour, minute, second = match.groups()
            month = _MONTHS.get(month_name.lower().rstrip("."))
            if month:
                return datetime(
                    int(year), month, int(day), int(hour or 0), int(minute or 0), int(second or 0)
                )
        match = _ISO_LOOSE.match(raw)
        if match:
            date, clock, fraction, offset = match.groups()
            offset = (offset or "").replace("Z", "+00:00")
            if offset and ":" not in offset:
                offset = offset[:3] + ":" + offset[3:]
            return datetime.fromisoformat(f"{date}T{clock}{(fraction or '')[:7]}{offset}")
    except ValueError:
        return None  # day 31 of a 30-day month and the like: unreadable, said by the caller
    for candidate in _DAY_FIRST_FORMATS:
        try:
            return datetime.strptime(raw, candidate)
        except ValueError:
            continue
    return None


# --- paths -----------------------------------------------------------------------------------
# The path language of ``FieldMapping`` (ingest/spec.py): 'properties.free', 'a.b[0].c',
# 'a[-1]', and filters 'sensors[name=free&unit!=%].value'. One reader for every adapter
# that accepts a mapping, so a path means the same in generic, Opendatasoft and the rest.

Step = tuple[str, Any]
_TOKEN = re.compile(r"\[([^\]]*)\]|([^.\[\]]+)")
_INDEX = re.compile(r"-?\d+")
_CONDITION = re.compile(r"\s*([^!=]+?)\s*(!=|=)\s*(.*?)\s*$")


@lru_cache(maxsize=1024)
def parse_path(path: str) -> tuple[Step, ...]:
    """The steps of a dotted path: ('key', name), ('index', n) or ('filter', conditions)."""
    steps: list[Step] = []
    for match in _TOKEN.finditer(path):
        bracket, key = match.groups()
        if key is not None:
            steps.append(("key", key.strip()))
        elif _INDEX.fullmatch(bracket.strip()):
            steps.append(("index", int(bracket)))
        else:
            conditions = []
            for condition in bracket.split("&"):
                parts = _CONDITION.match(condition)
                if not parts:
                    raise PayloadError(f"bad filter [{bracket}] in mapping path {path!r}")
                conditions.append((parse_path(parts.group(1)), parts.group(2), parts.group(3)))
            steps.append(("filter", tuple(conditions)))
    return tuple(steps)


def walk_path(value: Any, steps: tuple[Step, ...] | list[Step]) -> Any:
    """Follow parsed steps through dicts and lists; None as soon as something is absent.

    A key applied to a list reads the list's first item: a repeated XML element, or a
    list where the mapping expected one object.
    """
    for kind, arg in steps:
        if value is None:
            return None
        if kind == "key":
            if isinstance(value, list):
                value = value[0] if value else None
            value = value.get(arg) if isinstance(value, Mapping) else None
        elif kind == "index":
            if isinstance(value, list) and -len(value) <= arg < len(value):
                value = value[arg]
            elif isinstance(value, Mapping) and str(arg) in value:
                value = value[str(arg)]
            else:
                return None
        else:
            items = value if isinstance(value, list) else [value]
            value = next((item for item in items if _matches(item, arg)), None)
    return value


def _matches(item: Any, conditions: tuple[tuple[tuple[Step, ...], str, str], ...]) -> bool:
    for steps, op, expected in conditions:
        actual = walk_path(item, steps)
        actual_text = "" if actual is None else str(actual)
        if (actual_text == expected) != (op == "="):
            return False
    return True


def get_path(data: Any, path: str | None) -> Any:
    """The value at a dotted path ('properties.free', 'a.b[0].c'); None if absent."""
    if not path:
        return None
    return walk_path(data, parse_path(path))


def member(container: Any, key: str) -> dict[str, Any]:
    """``container[key]`` when it is a JSON object, else an empty dict: safe nested reads."""
    if isinstance(container, Mapping):
        value = container.get(key)
        if isinstance(value, dict):
            return value
    return {}


# --- reasons ---------------------------------------------------------------------------------


def error_reason(exc: Exception) -> str:
    """A one-line reason for a ``Rejected`` from a ValueError or a pydantic ValidationError."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            first = errors()[0]
        except (IndexError, TypeError):
            return str(exc)
        field = ".".join(str(part) for part in first.get("loc", ()))
        return f"invalid {field}: {first.get('msg')} (got {first.get('input')!r})"
    return str(exc)

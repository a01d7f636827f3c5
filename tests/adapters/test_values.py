"""The shared value readers (ingest/adapters/_values.py) and coordinates (ingest/adapters/geo.py).

Every adapter reads numbers, times, paths and positions through these, so what
they accept and refuse is pinned here once; the adapters' own tests pin how each
format uses them.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ingest.adapters import geo
from ingest.adapters._values import (
    address_text,
    clean_text,
    decode_text,
    get_path,
    parse_float,
    parse_int,
    parse_iso_timestamp,
    parse_timestamp,
    text,
    zone,
)
from ingest.records import PayloadError

# --- numbers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("56", 56.0),
        ("1,5", 1.5),
        ("1.234,5", 1234.5),
        ("1,234.5", 1234.5),
        ("1 234", 1234.0),
        ("1\u202f234,5", 1234.5),
        ("437526,638490494", 437526.638490494),  # Madrid pmed_ubicacion x
        (" 12 ", 12.0),
        ("-3.5", -3.5),
        (930.0, 930.0),
        (7, 7.0),
        ("nan", None),
        (float("nan"), None),
        ("", None),
        ("  ", None),
        (None, None),
    ],
)
def test_numbers(raw, expected):
    assert parse_float(raw) == expected
    assert parse_float(raw, lenient=True) == expected


@pytest.mark.parametrize("raw", ["???", "-", "n/a", {}, [1]])
def test_values_without_a_number_are_absent_only_when_lenient(raw):
    assert parse_float(raw, lenient=True) is None
    with pytest.raises(ValueError):
        parse_float(raw)


@pytest.mark.parametrize("raw", ["12a", "1,234,567", "1e400", "6O"])
def test_text_with_digits_that_is_not_a_number_is_an_error_either_way(raw):
    for lenient in (False, True):
        with pytest.raises(ValueError):
            parse_float(raw, lenient=lenient)


def test_booleans_count_only_when_lenient():
    assert parse_float(True, lenient=True) == 1.0
    with pytest.raises(ValueError, match="boolean"):
        parse_float(True)


def test_counts_are_whole_unless_rounded():
    assert parse_int("12,0") == 12
    assert parse_int(12.0) == 12
    with pytest.raises(ValueError, match="whole number"):
        parse_int("12.5")
    assert parse_int("12.6", rounded=True) == 13
    assert parse_int("-", lenient=True) is None


# --- timestamps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "tz", "expected"),
    [
        ("2024-06-10 10:20:00", "Europe/Berlin", datetime(2024, 6, 10, 8, 20, tzinfo=UTC)),
        ("2024-11-27T18:39:00Z", "Europe/Berlin", datetime(2024, 11, 27, 18, 39, tzinfo=UTC)),
        ("2024-06-18T07:59:51.000000Z", "UTC", datetime(2024, 6, 18, 7, 59, 51, tzinfo=UTC)),
        ("2019-12-11T22:30:18.501+00:00", "UTC", datetime(2019, 12, 11, 22, 30, 18, 501000, tzinfo=UTC)),
        ("2019-11-26T10:00:00.123456789+0200", "UTC", datetime(2019, 11, 26, 8, 0, 0, 123456, tzinfo=UTC)),
        (1723876205000, "UTC", datetime(2024, 8, 17, 6, 30, 5, tzinfo=UTC)),
        ("1723876205", "UTC", datetime(2024, 8, 17, 6, 30, 5, tzinfo=UTC)),
        ("Mon, 15 Jul 2019 21:12:00 +0200", "UTC", datetime(2019, 7, 15, 19, 12, tzinfo=UTC)),
        ("Mon, 22 Jun 2015 12:43:50 GMT", "Europe/Zurich", datetime(2015, 6, 22, 12, 43, 50, tzinfo=UTC)),
        ("30.10.2023 11:40", "Europe/Berlin", datetime(2023, 10, 30, 10, 40, tzinfo=UTC)),
        ("11.03.2022, 21:05", "Europe/Berlin", datetime(2022, 3, 11, 20, 5, tzinfo=UTC)),
        ("04/11/2025 17:30:05", "Europe/Madrid", datetime(2025, 11, 4, 16, 30, 5, tzinfo=UTC)),
        ("mer. 03 avril 2019 à 08:00", "Europe/Paris", datetime(2019, 4, 3, 6, 0, tzinfo=UTC)),
        ("3. März 2024 um 14:30", "Europe/Berlin", datetime(2024, 3, 3, 13, 30, tzinfo=UTC)),
        ("2016-12-07T11:10:00/2016-12-07T11:15:00", "UTC", datetime(2016, 12, 7, 11, 15, tzinfo=UTC)),
    ],
)
def test_timestamps(raw, tz, expected):
    assert parse_timestamp(raw, tz) == expected
    assert parse_timestamp(raw, zone(tz)) == expected


def test_timestamp_format_is_tried_first_and_garbage_raises():
    when = parse_timestamp("20240610-1020", "Europe/Berlin", "%Y%m%d-%H%M")
    assert when == datetime(2024, 6, 10, 8, 20, tzinfo=UTC)
    # 12 digits with a format are that format, not epoch seconds
    assert parse_timestamp("202406101020", "UTC", "%Y%m%d%H%M") == datetime(2024, 6, 10, 10, 20, tzinfo=UTC)
    assert parse_timestamp("", "UTC") is None
    assert parse_timestamp(None) is None
    for garbage in ("yesterday", "31.02.2024 10:00", True, {"at": 1}):
        with pytest.raises(ValueError):
            parse_timestamp(garbage)


def test_iso_only_reader_for_schema_typed_formats():
    assert parse_iso_timestamp("2019-11-26T10:00:00+02:00") == datetime(2019, 11, 26, 8, tzinfo=UTC)
    assert parse_iso_timestamp("2022-02-11T14:16:01", "Europe/Berlin") == datetime(
        2022, 2, 11, 13, 16, 1, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="not an ISO 8601 date-time"):
        parse_iso_timestamp("07.02.2025 19:05")


def test_unknown_zone_is_an_error():
    with pytest.raises(ValueError, match="unknown time zone"):
        zone("Europe/Atlantis")
    assert zone("UTC") is UTC


# --- text and paths ------------------------------------------------------------------------------


def test_text_helpers():
    assert text(1234.0) == "1234"
    assert text("  P+R Bondorf ") == "P+R Bondorf"
    assert text({"id": 1}) is None
    assert text(float("nan")) is None
    assert clean_text("Rue A\n  67000 Strasbourg") == "Rue A, 67000 Strasbourg"
    assert address_text({"streetAddress": "Calle Alcalá 1", "addressLocality": "Madrid"}) == (
        "Calle Alcalá 1 Madrid"
    )
    assert decode_text("Vélib'".encode("cp1252")) == "Vélib'"
    assert decode_text(b"\xef\xbb\xbfid;x") == "id;x"


def test_paths():
    doc = {"a": [{"b": 1, "n": "x"}, {"b": 2, "n": "y"}], "c.d": 3}
    assert get_path(doc, "a[0].b") == 1
    assert get_path(doc, "a[-1].b") == 2
    assert get_path(doc, "a[n=y].b") == 2
    assert get_path(doc, "a[n!=x].b") == 2
    assert get_path(doc, "a.b") == 1  # a key on a list reads its first item (repeated XML elements)
    assert get_path(doc, "a[5].b") is None
    assert get_path(doc, None) is None
    with pytest.raises(PayloadError, match="bad filter"):
        get_path(doc, "a[n>1].b")


# --- coordinates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["EPSG:4326", "urn:ogc:def:crs:EPSG::4326", "urn:ogc:def:crs:OGC:1.3:CRS84", "CRS84", "WGS84", None, ""],
)
def test_wgs84_spellings(name):
    assert geo.is_wgs84(name)


def test_reprojection_of_a_real_madrid_point():
    # pmed_ubicacion row 04FT74PM01: x 437526,638490494 y 4473735,29258508 in ETRS89 / UTM 30N
    lat, lon = geo.to_latlon(437526.638490494, 4473735.29258508, "EPSG:25830")
    assert lat == pytest.approx(40.4121, abs=1e-3)
    assert lon == pytest.approx(-3.7363, abs=1e-3)
    assert not geo.is_wgs84("urn:ogc:def:crs:EPSG::25830")
    with pytest.raises(geo.GeoError, match="unknown coordinate reference system"):
        geo.to_latlon(1.0, 2.0, "EPSG:999999")


def test_representative_points():
    assert geo.representative_point({"type": "Point", "coordinates": [7.1, 50.7]}) == (50.7, 7.1)
    # a line: the point halfway along it, on the line
    line = {"type": "LineString", "coordinates": [[0.0, 10.0], [2.0, 10.0], [10.0, 10.0]]}
    assert geo.representative_point(line) == (10.0, 5.0)
    square = {"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]]]}
    assert geo.representative_point(square) == (1.0, 1.0)
    # a geometry naming its CRS in the 2008 GeoJSON 'crs' member is reprojected
    named = {
        "type": "Point",
        "coordinates": [437526.638490494, 4473735.29258508],
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::25830"}},
    }
    lat, lon = geo.representative_point(named)
    assert (round(lat, 2), round(lon, 2)) == (40.41, -3.74)
    assert geo.representative_point({"type": "Unknown"}) is None
    assert not geo.valid_lat_lon(0, 0)
    assert not geo.valid_lat_lon(None, 7.1)


def test_thinning_keeps_ends_and_closure():
    ring = [[float(i), float(i % 7)] for i in range(1000)] + [[0.0, 0.0]]
    polygon = {"type": "Polygon", "coordinates": [ring]}
    thinned = geo.thin_geometry(polygon, 100)
    kept = thinned["coordinates"][0]
    assert geo.count_positions(polygon) == 1001
    assert 90 <= len(kept) <= 110
    assert kept[0] == ring[0] and kept[-1] == ring[-1]

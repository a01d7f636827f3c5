"""Madrid adapter: legacy Informo pm.xml, the UTM 30N location table, current-format variants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.adapters import madrid
from ingest.records import PayloadError, TrafficObservation, TrafficSite
from ingest.spec import FeedSpec, ParseContext

FEEDS = Path(__file__).parent.parent / "fixtures" / "feeds" / "traffic"
PM_XML = FEEDS / "es-madrid-informo-pm-xml-legacy-codigo-2018-4275points.xml"
LOCATIONS = FEEDS / "es-madrid-pmed-ubicacion-utm30-4072points.csv"


def _ctx(**options) -> ParseContext:
    return ParseContext(
        feed=FeedSpec(name="madrid", url="https://informo.madrid.es/informo/tmadrid/pm.xml", options=options)
    )


def test_sniff():
    assert madrid.sniff(PM_XML.read_bytes()[:65536]) >= 90
    assert madrid.sniff(LOCATIONS.read_bytes()[:65536]) >= 90
    assert madrid.sniff(b"<d2LogicalModel/>") == 0


def test_legacy_pm_xml():
    before = datetime.now(UTC) - timedelta(seconds=1)
    batch = madrid.parse(PM_XML.read_bytes(), _ctx())
    # 4275 points: 3944 with error=N, 202 flagged error=S, 129 reporting 'Error' everywhere.
    assert batch.counts() == {"traffic_observation": 3944}
    assert len(batch.rejected) == 331
    reasons = [rejected.reason for rejected in batch.rejected]
    assert reasons.count("the operator flags this point's reading as erroneous (error=S)") == 202
    assert reasons.count("no valid reading for this point (error='Error')") == 129
    assert batch.rejected[0].source_id == "24010"
    first = batch.records[0]
    assert isinstance(first, TrafficObservation)
    assert first.id == "24001"
    assert (first.flow_vph, first.occupancy_pct, first.congestion) == (160.0, 1.0, "free")
    assert first.extra["load_pct"] == 10.0
    # No fecha_hora in the legacy format: stamped at parse time, and said so.
    assert first.observed_at >= before
    assert first.extra["observed_at_source"] == "received"
    assert batch.generated_at is None
    m30 = next(record for record in batch.records if record.id == "PM40001")
    assert (m30.flow_vph, m30.occupancy_pct, m30.speed_kmh, m30.congestion) == (
        4500.0,
        15.0,
        56.0,
        "moderate",
    )
    levels = [record.congestion for record in batch.records]
    assert levels.count("congested") == 58  # nivelServicio 3 among the error=N points
    blank_level = next(record for record in batch.records if record.id == "85041")
    assert (blank_level.congestion, blank_level.flow_vph) == ("unknown", 1895.0)


def test_location_table_by_id():
    batch = madrid.parse(LOCATIONS.read_bytes(), _ctx())
    assert batch.counts() == {"traffic_site": 4072}
    assert batch.rejected == []
    first = batch.records[0]
    assert isinstance(first, TrafficSite)
    assert (first.id, first.name, first.road) == ("1006", "04FT74PM01", "M-30")
    # x=437526,638490494 y=4473735,29258508 in ETRS89 / UTM 30N
    assert first.lat == pytest.approx(40.411894, abs=1e-6)
    assert first.lon == pytest.approx(-3.736324, abs=1e-6)
    assert first.extra == {"element_type": "M-30", "cod_cent": "04FT74PM01"}


def test_location_table_by_cod_cent_matches_legacy_codigo():
    sites = madrid.parse(LOCATIONS.read_bytes(), _ctx(site_id="cod_cent"))
    assert sites.counts() == {"traffic_site": 4067}
    assert sorted(r.reason for r in sites.rejected) == [
        "duplicate cod_cent 05026",
        "duplicate cod_cent 50004",
        "duplicate cod_cent 85046",
        "duplicate cod_cent PM20322",
        "duplicate cod_cent PM40462",
    ]
    observations = madrid.parse(PM_XML.read_bytes(), _ctx(site_id="cod_cent"))
    site_ids = {site.id for site in sites.records}
    matched = [obs for obs in observations.records if obs.id in site_ids]
    assert len(matched) == 3727  # of the 4022 codigo values in the table, those with error=N
    urban = next(site for site in sites.records if site.id == "22301")
    assert urban.name.startswith("(MICRO) Pl, San Juan de la Cruz N-S")
    assert urban.extra["id"] == "4466"


def test_current_pm_xml_with_time_idelem_and_coordinates():
    # The current Informo format: fecha_hora in Madrid local time, idelem, st_x/st_y with comma decimals.
    body = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<pms><fecha_hora>04/11/2025 17:30:05</fecha_hora>'
        "<pm><idelem>1006</idelem><descripcion>SEP\xdaLVEDA ENTRADA</descripcion>"
        "<intensidad>4500</intensidad>"
        "<ocupacion>15</ocupacion><carga>86</carga><nivelServicio>3</nivelServicio><velocidad>56</velocidad>"
        "<error>N</error><st_x>437526,638490494</st_x><st_y>4473735,29258508</st_y></pm>"
        "<pm><descripcion>no id</descripcion><intensidad>1</intensidad><error>N</error></pm>"
        "</pms>"
    ).encode("latin-1")
    batch = madrid.parse(body, _ctx())
    site, obs = batch.records
    assert isinstance(site, TrafficSite) and isinstance(obs, TrafficObservation)
    assert (site.id, site.name) == ("1006", "SEPÚLVEDA ENTRADA")
    assert site.lat == pytest.approx(40.411894, abs=1e-6)
    assert obs.observed_at == datetime(2025, 11, 4, 16, 30, 5, tzinfo=UTC)
    assert batch.generated_at == obs.observed_at
    assert (obs.flow_vph, obs.speed_kmh, obs.congestion) == (4500.0, 56.0, "congested")
    assert "observed_at_source" not in obs.extra
    assert batch.rejected[0].reason == "<pm> has no <idelem> or <codigo>"


def test_latin1_csv_with_lat_lon_columns():
    body = (
        '"tipo_elem";"distrito";"id";"cod_cent";"nombre";"utm_x";"utm_y";"longitud";"latitud"\n'
        '"URB";"4";"3409";"01001";"Jos\xe9 Ortega y Gasset E-O";'
        '"441615,34";"4475994,63";"-3,6876";"40,4305"\n'
        '"URB";"4";"3410";"01002";"sin coordenadas";"";"";"";""\n'
    ).encode("cp1252")
    batch = madrid.parse(body, _ctx())
    (site,) = batch.records
    assert (site.id, site.name, site.lat, site.lon) == ("3409", "José Ortega y Gasset E-O", 40.4305, -3.6876)
    assert site.extra == {"element_type": "URB", "cod_cent": "01001", "district": "4"}
    assert batch.rejected[0].source_id == "3410"
    assert "no coordinates" in batch.rejected[0].reason


def test_unreadable_payloads():
    with pytest.raises(PayloadError, match="not well-formed"):
        madrid.parse(b"<pms><pm>", _ctx())
    with pytest.raises(PayloadError, match="<pms>"):
        madrid.parse(b"<other/>", _ctx())
    with pytest.raises(PayloadError, match="no 'id' column"):
        madrid.parse(b"a;b\n1;2\n", _ctx())

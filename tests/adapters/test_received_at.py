"""Adapters are pure: a reading that states no time is stamped with the context's received_at.

The same bytes and context give the same records, whenever they are parsed; the clock is read
once, at the edge (the runner), not inside the four adapters that used to read it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from ingest.adapters import generic, madrid, ngsi, opendatasoft
from ingest.records import Batch
from ingest.spec import FeedSpec, FieldMapping, ParseContext

FEEDS = Path(__file__).parent.parent / "fixtures" / "feeds"
# Far from any "now", so a reading stamped by the clock cannot pass for one stamped by the context.
RECEIVED = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)


def _observations(batch: Batch) -> list:
    return [r for r in batch.records if r.type.endswith("_observation")]


def _same_twice(parse, body: bytes, ctx: ParseContext) -> Batch:
    first, second = parse(body, ctx), parse(body, ctx)
    assert [r.model_dump() for r in first.records] == [r.model_dump() for r in second.records]
    return first


def test_madrid_legacy_pm_xml_without_a_time():
    body = (FEEDS / "traffic" / "es-madrid-informo-pm-xml-legacy-codigo-2018-4275points.xml").read_bytes()
    ctx = ParseContext(
        feed=FeedSpec(name="madrid", url="https://informo.madrid.es/pm.xml"), received_at=RECEIVED
    )
    observations = _observations(_same_twice(madrid.parse, body, ctx))
    assert len(observations) == 3944
    assert {o.observed_at for o in observations} == {RECEIVED}
    assert {o.extra["observed_at_source"] for o in observations} == {"received"}


def test_ngsi_key_values_example_without_a_time():
    body = (FEEDS / "ngsi" / "sdm-ParkingSpot-example.json").read_bytes()
    (observation,) = _observations(_same_twice(ngsi.parse, body, ParseContext(received_at=RECEIVED)))
    assert observation.observed_at == RECEIVED
    assert observation.extra == {"observed_at": "received"}


def test_generic_json_without_a_time():
    body = (FEEDS / "parking-json" / "de-aalen-parking-realtime.json").read_bytes()
    observations = _observations(_same_twice(generic.parse, body, ParseContext(received_at=RECEIVED)))
    assert observations and {o.observed_at for o in observations} == {RECEIVED}
    assert all(o.extra == {"observed_at": "received"} for o in observations)


def test_opendatasoft_records_without_a_time():
    payload = json.loads(
        (FEEDS / "opendatasoft" / "basel-ods-explore-v2.1-parkhaeuser-16records.json").read_text()
    )
    for record in payload["results"]:  # this copy states no time: the capture on disk is unchanged
        record.pop("published")
    mapping = FieldMapping(id="id", name="name", free="free", capacity="total")
    feed = FeedSpec(
        name="basel",
        url="https://data.bs.ch/api/explore/v2.1/catalog/datasets/100088/records",
        mapping=mapping,
    )
    body = json.dumps(payload).encode()
    observations = _observations(
        _same_twice(opendatasoft.parse, body, ParseContext(feed=feed, received_at=RECEIVED))
    )
    assert len(observations) == 16
    assert {o.observed_at for o in observations} == {RECEIVED}
    assert {o.extra["observed_at_source"] for o in observations} == {"received"}

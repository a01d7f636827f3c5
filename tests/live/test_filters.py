"""Filters deliver exactly the matching changes: compared with the change log itself."""

from __future__ import annotations

from tests.live.conftest import changes_after, collect_deltas, subscribe

INSIDE = {"IN1": (48.58, 7.75), "IN2": (48.59, 7.76)}
OUTSIDE = {"OUT1": (48.70, 7.75), "OUT2": (43.30, 5.37), "NOPOS": (0.0, 0.0)}
BBOX = [7.70, 48.55, 7.80, 48.60]


def _in_bbox(lat, lon) -> bool:
    return lat is not None and lon is not None and BBOX[0] <= lon <= BBOX[2] and BBOX[1] <= lat <= BBOX[3]


async def test_bbox_and_ids_filters_deliver_exactly_the_matching_changes(
    server, writer, engine, client_factory
) -> None:
    where = {**INSIDE, **OUTSIDE}
    await writer.parking({s: 1 for s in where}, where=where)
    await writer.parking({"X1": 1}, feed="other", where={"X1": (48.58, 7.75)})
    by_bbox = await client_factory(server.ws_url)
    _, items = await subscribe(by_bbox, topics=["parking"], filter={"bbox": BBOX})
    assert sorted(i["id"] for i in items) == ["city:IN1", "city:IN2", "other:X1"]
    by_ids = await client_factory(server.ws_url)
    _, items = await subscribe(by_ids, topics=["parking"], filter={"ids": ["city:OUT2", "city:IN1"]})
    assert sorted(i["id"] for i in items) == ["city:IN1", "city:OUT2"]
    by_feed = await client_factory(server.ws_url)
    _, items = await subscribe(by_feed, topics=["parking"], filter={"feeds": ["other"]})
    assert [i["id"] for i in items] == ["other:X1"]

    start = (await changes_after(engine))[-1]["seq"]
    for round_ in range(2, 12):
        await writer.parking({s: round_ for s in where}, where=where)
        await writer.parking({"X1": round_}, feed="other", where={"X1": (48.58, 7.75)})
    # A last change that every client matches marks the end of the stream.
    await writer.parking({"IN1": 99}, where=where)
    end = await writer.parking({"X1": 99}, feed="other", where={"X1": (48.58, 7.75)})
    end_in1 = end - 1
    log = await changes_after(engine, start)
    assert len(log) == 10 * 6 + 2

    got = [d["seq"] for d in await collect_deltas(by_bbox, end)]
    assert got == [c["seq"] for c in log if _in_bbox(c["lat"], c["lon"])]
    got = [d["seq"] for d in await collect_deltas(by_ids, end_in1)]
    assert got == [c["seq"] for c in log if c["site_id"] in ("city:OUT2", "city:IN1")]
    got = [d["seq"] for d in await collect_deltas(by_feed, end)]
    assert got == [c["seq"] for c in log if c["site_id"].startswith("other:")]


async def test_min_free_sends_sites_leaving_the_threshold_once(server, writer, client_factory) -> None:
    await writer.parking({"A": 50, "B": 2})
    ws = await client_factory(server.ws_url)
    _, items = await subscribe(ws, topics=["parking"], filter={"min_free": 10})
    assert [i["id"] for i in items] == ["city:A"]
    await writer.parking({"A": 5})  # A falls below: the client shows it, so it must hear
    await writer.parking({"A": 4})  # still below: nothing new for this client
    await writer.parking({"B": 3})  # B never shown, still below: nothing
    await writer.parking({"B": 30})  # B rises: shown from now on
    last = await writer.parking({"A": 40})
    deltas = await collect_deltas(ws, last)
    assert [(d["id"], d["fields"]["free"]) for d in deltas] == [("city:A", 5), ("city:B", 30), ("city:A", 40)]

"""Current state as GeoJSON: shape, filters, nearest-first ordering, cursor pages, trend, staleness."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.api.conftest import Api
from tests.api.seed import HELSINKI, PARIS, RENNES, RENNES_SITES


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    r = 6_371_000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def all_pages(api: Api, path: str, **params: Any) -> list[dict[str, Any]]:
    features: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        body = api.client.get(path, params=query).raise_for_status().json()
        assert body["count"] == len(body["features"])
        features += body["features"]
        cursor = body["next_cursor"]
        if cursor is None:
            return features
    raise AssertionError("pagination did not end")


def test_parking_geojson_shape_and_current_state(api: Api) -> None:
    response = api.client.get("/api/v1/parking/sites")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    body = response.json()
    assert body["type"] == "FeatureCollection"
    by_id = {f["id"]: f for f in body["features"]}
    assert set(by_id) == {f"{RENNES.name}:{s}" for s in RENNES_SITES} | {"demo-parking:P1"}
    colombier = by_id["rennes-parking:CIT_PAR_1"]
    name, lat, lon, capacity, site_type, address = RENNES_SITES["CIT_PAR_1"]
    assert colombier["type"] == "Feature"
    assert colombier["geometry"] == {"type": "Point", "coordinates": [lon, lat]}
    last_t, last_free, last_occupied = api.data.parking["rennes-parking:CIT_PAR_1"][-1]
    props = colombier["properties"]
    assert props["id"] == "rennes-parking:CIT_PAR_1"
    assert props["feed"] == "rennes-parking"
    assert props["source_id"] == "CIT_PAR_1"
    assert (props["name"], props["capacity"], props["site_type"], props["address"]) == (
        name,
        capacity,
        site_type,
        address,
    )
    assert (props["free"], props["occupied"]) == (last_free, last_occupied)
    assert props["occupancy_pct"] == round(last_occupied * 100 / capacity, 1)
    assert props["observed_at"] == last_t.isoformat()
    assert props["status"] == "open"
    assert props["stale"] is False and props["stale_reason"] is None
    assert props["demo"] is False and props["city"] == "Rennes"


def test_trend_over_the_last_window(api: Api) -> None:
    asked_at = datetime.now(UTC)
    props = {f["id"]: f["properties"] for f in api.client.get("/api/v1/parking/sites").json()["features"]}
    # Site 1 loses ~20 spaces per 5 minutes (> 2 % of 1100): filling; site 2 gains 7 of 400: emptying;
    # site 3 wobbles by one: steady; the demo site has a single old observation: unknown.
    assert props["rennes-parking:CIT_PAR_1"]["trend"] == "filling"
    assert props["rennes-parking:CIT_PAR_2"]["trend"] == "emptying"
    assert props["rennes-parking:CIT_PAR_3"]["trend"] == "steady"
    assert props["demo-parking:P1"]["trend"] == "unknown"
    # The delta is the last minus the first free count among the observations of the window
    # that ends at the site's latest reading (computed when that reading was written).
    span = timedelta(minutes=api.settings.api_trend_window_minutes)
    for sid in ("rennes-parking:CIT_PAR_1", "rennes-parking:CIT_PAR_2", "rennes-parking:CIT_PAR_3"):
        last_t = api.data.parking[sid][-1][0]
        assert last_t >= asked_at - span, "the seed's latest readings are within the window of now"
        window = [free for t, free, _ in api.data.parking[sid] if last_t - span <= t <= last_t]
        assert props[sid]["trend_free_delta"] == window[-1] - window[0], sid


def test_stale_by_age_and_demo_flag(api: Api) -> None:
    demo = api.client.get("/api/v1/parking/sites/demo-parking:P1").json()
    assert demo["type"] == "Feature"
    assert demo["properties"]["stale"] is True
    assert demo["properties"]["stale_reason"] == "age"
    assert demo["properties"]["demo"] is True
    assert demo["properties"]["city"] == "Demo City"


def test_filters_bbox_feed_min_free_type(api: Api) -> None:
    def ids(**params: Any) -> set[str]:
        return {f["id"] for f in api.client.get("/api/v1/parking/sites", params=params).json()["features"]}

    latest = {sid: series[-1][1] for sid, series in api.data.parking.items()}
    # bbox around the city centre: Henri Fréville (48.0873) lies south of it.
    inside = ids(bbox="-1.70,48.10,-1.66,48.12")
    expected = {
        f"rennes-parking:{sid}"
        for sid, (_, lat, lon, *_rest) in RENNES_SITES.items()
        if 48.10 <= lat <= 48.12 and -1.70 <= lon <= -1.66
    }
    assert inside == expected and "rennes-parking:CIT_PAR_5" not in inside
    assert ids(feed="demo-parking") == {"demo-parking:P1"}
    threshold = sorted(latest.values())[2]
    assert ids(feed="rennes-parking", min_free=threshold) == {s for s, f in latest.items() if f >= threshold}
    assert ids(type="surface") == {"rennes-parking:CIT_PAR_4"}
    assert ids(feed="no-such-feed") == set()


def test_near_is_nearest_first_within_radius(api: Api) -> None:
    lat, lon = 48.1090, -1.6790
    body = api.client.get(
        "/api/v1/parking/sites", params={"near": f"{lat},{lon}", "radius": 1500, "limit": 10}
    ).json()
    got = [(f["id"], f["properties"]["distance_m"]) for f in body["features"]]
    expected = sorted(
        (f"rennes-parking:{sid}", haversine_m(lat, lon, slat, slon))
        for sid, (_, slat, slon, *_r) in RENNES_SITES.items()
        if haversine_m(lat, lon, slat, slon) <= 1500
    )
    expected.sort(key=lambda x: x[1])
    assert [i for i, _ in got] == [i for i, _ in expected]
    for (_, d_api), (_, d_ref) in zip(got, expected, strict=True):
        assert abs(d_api - d_ref) < max(5.0, d_ref * 0.005)  # earthdistance's sphere vs haversine
    assert body["next_cursor"] is None
    limited = api.client.get(
        "/api/v1/parking/sites", params={"near": f"{lat},{lon}", "radius": 1500, "limit": 2}
    )
    assert [f["id"] for f in limited.json()["features"]] == [i for i, _ in expected[:2]]


def test_cursor_pagination_walks_every_site_once(api: Api) -> None:
    everything = {f["id"] for f in api.client.get("/api/v1/parking/sites").json()["features"]}
    first = api.client.get("/api/v1/parking/sites", params={"limit": 2})
    assert first.json()["next_cursor"] and 'rel="next"' in first.headers["link"]
    paged = all_pages(api, "/api/v1/parking/sites", limit=2)
    ids = [f["id"] for f in paged]
    assert len(ids) == len(set(ids)) == len(everything)
    assert set(ids) == everything
    assert ids == sorted(ids)


def test_traffic_sites_segments_and_ratio(api: Api) -> None:
    body = api.client.get("/api/v1/traffic/sites", params={"feed": HELSINKI.name}).json()
    by_id = {f["id"]: f for f in body["features"]}
    segment = by_id["fintraffic-tms:seg-mannerheimintie"]
    assert segment["geometry"]["type"] == "LineString"
    assert len(segment["geometry"]["coordinates"]) == 3
    sensor = by_id["fintraffic-tms:23001_1"]
    assert sensor["geometry"] == {"type": "Point", "coordinates": [24.8037, 60.1757]}
    _, speed, flow = api.data.traffic["fintraffic-tms:23001_1"][-1]
    props = sensor["properties"]
    assert (props["speed_kmh"], props["flow_vph"], props["free_flow_kmh"]) == (speed, flow, 100.0)
    assert props["speed_ratio"] == round(speed / 100.0, 3)
    assert props["congestion"] in ("free", "heavy")


def test_only_active_events(api: Api) -> None:
    body = api.client.get("/api/v1/traffic/events").json()
    assert [f["id"] for f in body["features"]] == ["fintraffic-tms:GUID5000"]
    props = body["features"][0]["properties"]
    assert props["event_type"] == "roadworks" and props["valid_to"] is not None


def test_bike_stations(api: Api) -> None:
    body = api.client.get("/api/v1/bikes/stations", params={"feed": PARIS.name}).json()
    assert {f["id"] for f in body["features"]} == set(api.data.bikes)
    for f in body["features"]:
        _, bikes, docks = api.data.bikes[f["id"]][-1]
        assert (f["properties"]["bikes_available"], f["properties"]["docks_available"]) == (bikes, docks)
    min_bikes = sorted(s[-1][1] for s in api.data.bikes.values())[1]
    filtered = api.client.get("/api/v1/bikes/stations", params={"min_bikes": min_bikes}).json()
    assert {f["id"] for f in filtered["features"]} == {
        i for i, s in api.data.bikes.items() if s[-1][1] >= min_bikes
    }


def test_unknown_ids_are_404_problems(api: Api) -> None:
    for path in (
        "/api/v1/parking/sites/rennes-parking:NOPE",
        "/api/v1/traffic/sites/x:y",
        "/api/v1/bikes/stations/velib:0",
        "/api/v1/feeds/nope",
        "/api/v1/parking/sites/rennes-parking:NOPE/history",
    ):
        response = api.client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 404


def test_meta_and_feeds(api: Api) -> None:
    meta = api.client.get("/api/v1/meta").json()
    assert meta["demo"] is True
    assert meta["tile_url"] == api.settings.tile_url
    cities = {c["name"]: c for c in meta["cities"]}
    lats = [v[1] for v in RENNES_SITES.values()]
    lons = [v[2] for v in RENNES_SITES.values()]
    assert cities["Rennes"]["bbox"] == [min(lons), min(lats), max(lons), max(lats)]
    assert cities["Rennes"]["sites"] == len(RENNES_SITES)
    # The registry's topics, from which the dashboard finds its layer modules.
    assert [(t["topic"], t["position"], t["history"]) for t in meta["topics"]] == [
        ("parking", True, True),
        ("traffic", True, True),
        ("bikes", True, True),
        ("events", True, False),
        ("feeds", False, False),
        ("alerts", False, False),
    ]
    feeds = {f["id"]: f for f in api.client.get("/api/v1/feeds").json()["items"]}
    assert feeds["demo-parking"]["demo"] is True
    assert feeds["velib"]["sites"] == {"parking": 0, "traffic": 0, "bikes": 3}
    # Query strings can hold credentials: never shown.
    assert feeds["fintraffic-tms"]["url"] == "https://tie.digitraffic.fi/api/tms/v1/stations/data"
    quarantine = api.client.get("/api/v1/feeds/velib/quarantine").json()
    assert [q["source_id"] for q in quarantine["items"]] == ["99999"]
    polls = api.client.get("/api/v1/feeds/velib/polls", params={"limit": 5}).json()
    assert len(polls["items"]) == 5 and polls["next_cursor"]
    assert all("?" not in p["url"] for p in polls["items"])
    started = [p["started_at"] for p in polls["items"]]
    assert started == sorted(started, reverse=True)
    rest = api.client.get("/api/v1/feeds/velib/polls", params={"limit": 1000, "cursor": polls["next_cursor"]})
    assert len(polls["items"]) + len(rest.json()["items"]) == len(api.data.bikes[next(iter(api.data.bikes))])


def test_every_site_kind_starts_with_the_identity_of_events() -> None:
    """base_properties writes identity()'s keys out for speed: they must stay the same keys, in
    the same order, with the same values."""
    from app.api.sites import base_properties, identity

    row = {
        "id": "f:1",
        "feed_id": "f",
        "source_id": "1",
        "name": "A",
        "observed_at": None,
        "received_at": None,
        "stale_reason": "age",
        "feed_demo": False,
        "feed_city": "Rennes",
        "distance_m": 12.345,
    }
    props = base_properties(row)
    assert list(props.items())[:3] == list(identity(row).items())
    assert props["stale"] is True and props["distance_m"] == 12.3

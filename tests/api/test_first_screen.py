"""``/api/v1/first-screen``: one city's car parks as the dashboard's first paint draws them. Its
derived values are the API's own (the same as ``/api/v1/parking/sites`` says), its default city
is the one the page would choose from ``/api/v1/meta``, and a bad ``city`` is a 4xx or an
explained fallback, never an empty answer."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api


def rest_parking(api: Api, feeds: list[str] | None) -> dict[str, dict[str, Any]]:
    """Every car park with a position, from the REST collection (all pages), by id."""
    out: dict[str, dict[str, Any]] = {}
    for feed in feeds or [None]:
        cursor = None
        while True:
            params = {k: v for k, v in {"feed": feed, "cursor": cursor, "limit": 1000}.items() if v}
            page = api.client.get("/api/v1/parking/sites", params=params).json()
            for f in page["features"]:
                if f["geometry"]:
                    out[f["id"]] = {**f["properties"], "lon": f["geometry"]["coordinates"][0]}
                    out[f["id"]]["lat"] = f["geometry"]["coordinates"][1]
            cursor = page.get("next_cursor")
            if not cursor:
                break
    return out


def as_rows(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    columns = answer["parking"]
    assert len({len(v) for v in columns.values()}) == 1, "columns of one length"
    names = list(columns)
    return {row[0]: dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)}


def page_default_city(meta: dict[str, Any]) -> str:
    """``defaultCity`` of frontend/js/main.js, over the service description."""
    cities = [c for c in meta["cities"] if c["bbox"]]
    best = max(cities, key=lambda c: (c["parking_sites"], c["sites"], [-ord(ch) for ch in c["name"]]))
    return best["name"] if best["parking_sites"] or best["sites"] else ""


def test_a_city_s_markers_carry_the_api_s_own_values(api: Api) -> None:
    meta = api.client.get("/api/v1/meta").json()
    rennes = next(c for c in meta["cities"] if c["name"] == "Rennes")
    response = api.client.get("/api/v1/first-screen", params={"city": "Rennes"})
    assert response.status_code == 200
    answer = response.json()
    assert (answer["city"], answer["feeds"], answer["bbox"], answer["fallback"]) == (
        "Rennes",
        rennes["feeds"],
        rennes["bbox"],
        None,
    )
    rows = as_rows(answer)
    rest = rest_parking(api, rennes["feeds"])
    assert rows and sorted(rows) == sorted(rest)
    assert answer["count"] == len(rows) and answer["truncated"] is False
    for site_id, row in rows.items():
        expected = rest[site_id]
        assert row["availability"] == expected["availability"], site_id
        assert row["occupancy_pct"] == expected["occupancy_pct"], site_id
        assert row["stale"] == expected["stale"], site_id
        assert (row["free"], row["capacity"]) == (expected["free"], expected["capacity"]), site_id
        assert row["lat"] == round(expected["lat"], 6) and row["lon"] == round(expected["lon"], 6), site_id


def test_the_default_city_is_the_page_s_and_empty_means_every_city(api: Api) -> None:
    meta = api.client.get("/api/v1/meta").json()
    default = api.client.get("/api/v1/first-screen").json()
    assert default["city"] == page_default_city(meta) != ""
    assert default["fallback"] is None
    everything = api.client.get("/api/v1/first-screen", params={"city": ""}).json()
    assert (everything["city"], everything["bbox"], everything["feeds"]) == ("", None, None)
    assert sorted(as_rows(everything)) == sorted(rest_parking(api, None))
    assert set(as_rows(default)) < set(as_rows(everything))


def test_an_unknown_city_falls_back_loudly_and_a_hostile_one_is_refused(api: Api) -> None:
    default = api.client.get("/api/v1/first-screen").json()
    gone = api.client.get("/api/v1/first-screen", params={"city": "Atlantis"}).json()
    assert (gone["city"], gone["fallback"]) == (default["city"], "unknown_city")
    assert as_rows(gone) == as_rows(default)
    too_long = api.client.get("/api/v1/first-screen", params={"city": "x" * 201})
    assert too_long.status_code == 400
    assert too_long.headers["content-type"].startswith("application/problem+json")

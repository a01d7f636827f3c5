"""NGSI-LD output (ETSI GS CIM 009): our sites as FIWARE Smart Data Models entities.

Only the query part of the API, read-only: ``GET /ngsi-ld/v1/entities?type=…`` and
``GET /ngsi-ld/v1/entities/{id}``. Entities are shaped after the official models
(OffStreetParking, TrafficFlowObserved, BikeHireDockingStation); the tests validate the
keyValues form against their JSON Schemas, which describe that form.

Content negotiation follows the spec: ``Accept: application/ld+json`` gets the
``@context`` inside each entity; otherwise (``application/json``, ``*/*``) the body is
plain JSON and the context travels in a ``Link`` header. Pagination is the spec's
``limit``/``offset``; ``count=true`` adds ``NGSILD-Results-Count``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote, urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import SessionDep, SettingsDep
from app.api.geojson import dumps
from app.api.params import MAX_TEXT, Page
from app.api.sites import SiteFilter, count_sites
from app.problems import ProblemError
from app.read.bikes import fetch_bikes
from app.read.parking import fetch_parking
from app.read.traffic import fetch_traffic, geometry_of
from app.state import get_state
from kernel.settings import Settings

router = APIRouter(prefix="/ngsi-ld/v1", tags=["ngsi-ld"])

CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
SDM_CONTEXTS = {
    "OffStreetParking": "https://raw.githubusercontent.com/smart-data-models/dataModel.Parking/master/context.jsonld",
    "TrafficFlowObserved": (
        "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/context.jsonld"
    ),
    "BikeHireDockingStation": (
        "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/context.jsonld"
    ),
}
CONTEXT = [*dict.fromkeys(SDM_CONTEXTS.values()), CORE_CONTEXT]
CONTEXT_PATH = "/ngsi-ld/v1/jsonldContexts/mobility-live.jsonld"
LD_JSON = "application/ld+json"
BAD_REQUEST = "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
NOT_FOUND = "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound"
NOT_ACCEPTABLE = "https://uri.etsi.org/ngsi-ld/errors/NotAcceptable"

# Our site_type words to the model's `category` and `layout` (only values the schema allows).
PARKING_CATEGORY = {
    "garage": ["parkingGarage"],
    "underground": ["underground", "parkingGarage"],
    "multistorey": ["parkingGarage"],
    "surface": ["parkingLot"],
    "lot": ["parkingLot"],
    "park_ride": ["urbanDeterrentParking", "parkingLot"],
    "truck": ["parkingLot"],
}
PARKING_LAYOUT = {"underground": ["multiLevel"], "multistorey": ["multiStorey"], "surface": ["surface"]}
ON_STREET_TYPES = ("street", "spot")
CONGESTED = {"heavy", "congested", "closed"}


def entity_id(kind: str, site_id: str) -> str:
    return f"urn:ngsi-ld:{kind}:{quote(site_id, safe=':-._~@!,')}"


def _nonneg(value: int | float | None) -> int | float | None:
    return value if value is not None and value >= 0 else None


def _common(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": entity_id(kind, row["id"]),
        "type": kind,
        "name": row["name"],
        "dataProvider": row["feed_id"],
        "dateModified": row["received_at"],
    }


def parking_entity(row: dict[str, Any]) -> dict[str, Any]:
    entity = _common("OffStreetParking", row)
    capacity = row["capacity"] if row["capacity"] and row["capacity"] >= 1 else None
    status: list[str] = []
    if row["status"] in ("open", "closed", "full"):
        status.append(row["status"])
    if row["status"] == "open" and row["free"]:
        status.append("spacesAvailable")
    occupancy = None
    if capacity and row["occupied"] is not None and 0 <= row["occupied"] <= capacity:
        occupancy = round(row["occupied"] / capacity, 4)
    elif capacity and row["free"] is not None and 0 <= row["free"] <= capacity:
        occupancy = round((capacity - row["free"]) / capacity, 4)
    entity.update(
        location={"type": "Point", "coordinates": [row["lon"], row["lat"]]},
        address={"streetAddress": row["address"]} if row["address"] else None,
        parkingSiteId=row["source_id"],
        category=PARKING_CATEGORY.get(row["site_type"] or ""),
        layout=PARKING_LAYOUT.get(row["site_type"] or ""),
        allowedVehicleType=["car"],
        totalSpotNumber=capacity,
        availableSpotNumber=_nonneg(row["free"]),
        occupiedSpotNumber=_nonneg(row["occupied"]),
        occupancy=occupancy,
        status=status or None,
        observationDateTime=row["observed_at"],
    )
    return entity


def traffic_entity(row: dict[str, Any]) -> dict[str, Any]:
    entity = _common("TrafficFlowObserved", row)
    occupancy = row["occupancy_pct"]
    direction = row["direction"] if row["direction"] in ("forward", "backward") else None
    entity.update(
        location=geometry_of(row),
        dateObserved=row["observed_at"],
        averageVehicleSpeed=_nonneg(row["speed_kmh"]),
        # Our flow is a rate (vehicles per hour); the model's intensity is a count per
        # observation period, so the period is stated as one hour ending at the observation.
        intensity=_nonneg(row["flow_vph"]),
        occupancy=round(occupancy / 100.0, 4) if occupancy is not None and 0 <= occupancy <= 100 else None,
        congested=(row["congestion"] in CONGESTED) if row["congestion"] != "unknown" else None,
        laneDirection=direction,
        description=row["road"],
    )
    return entity


def bike_entity(row: dict[str, Any]) -> dict[str, Any]:
    entity = _common("BikeHireDockingStation", row)
    bikes, docks = _nonneg(row["bikes_available"]), _nonneg(row["docks_available"])
    if row["status"] == "closed":
        status = "outOfService"
    elif row["status"] == "open":
        status = "empty" if bikes == 0 else "full" if docks == 0 else "working"
    else:
        status = None
    entity.update(
        location={"type": "Point", "coordinates": [row["lon"], row["lat"]]},
        address={"streetAddress": row["address"]} if row["address"] else None,
        stationName=row["name"],
        stationCode=row["source_id"],
        totalSlotNumber=_nonneg(row["capacity"]),
        availableBikeNumber=bikes,
        freeSlotNumber=docks,
        status=status,
        observationDateTime=row["observed_at"],
    )
    return entity


TEMPORAL = {"observationDateTime", "dateObserved", "dateModified"}
OBSERVED = {
    "availableSpotNumber",
    "occupiedSpotNumber",
    "occupancy",
    "status",
    "averageVehicleSpeed",
    "intensity",
    "congested",
    "availableBikeNumber",
    "freeSlotNumber",
}


def _iso(value: Any) -> Any:
    return value.isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value


def key_values(entity: dict[str, Any]) -> dict[str, Any]:
    return {k: _iso(v) for k, v in entity.items() if v is not None}


def normalized(entity: dict[str, Any], observed_at: Any) -> dict[str, Any]:
    """Each attribute as a Property (GeoProperty for location), dates typed as DateTime."""
    out: dict[str, Any] = {"id": entity["id"], "type": entity["type"]}
    for key, value in entity.items():
        if key in ("id", "type") or value is None:
            continue
        if key == "location":
            out[key] = {"type": "GeoProperty", "value": value}
        elif key in TEMPORAL:
            out[key] = {"type": "Property", "value": {"@type": "DateTime", "@value": _iso(value)}}
        else:
            attribute: dict[str, Any] = {"type": "Property", "value": value}
            if key in OBSERVED and observed_at is not None:
                attribute["observedAt"] = _iso(observed_at)
            out[key] = attribute
    return out


TypeName = Literal["OffStreetParking", "TrafficFlowObserved", "BikeHireDockingStation"]


async def _fetch(
    session: AsyncSession, settings: Settings, kind: str, filters: SiteFilter, page: Page
) -> list[dict[str, Any]]:
    if kind == "OffStreetParking":
        filters.where.append(f"coalesce(s.site_type, '') NOT IN {ON_STREET_TYPES!r}")
        filters.where.append("s.lat IS NOT NULL AND s.lon IS NOT NULL")
        rows = await fetch_parking(session, settings, filters, page)
        return [parking_entity(r) | {"_observed": r["observed_at"]} for r in rows]
    if kind == "TrafficFlowObserved":
        filters.where.append("s.observed_at IS NOT NULL")
        rows = await fetch_traffic(session, filters, page)
        return [traffic_entity(r) | {"_observed": r["observed_at"]} for r in rows]
    filters.where.append("s.lat IS NOT NULL AND s.lon IS NOT NULL")
    rows = await fetch_bikes(session, filters, page)
    return [bike_entity(r) | {"_observed": r["observed_at"]} for r in rows]


TABLES = {
    "OffStreetParking": "parking_sites",
    "TrafficFlowObserved": "traffic_sites",
    "BikeHireDockingStation": "bike_stations",
}


def _negotiate(request: Request) -> str:
    accept = request.headers.get("accept", "*/*").lower()
    if LD_JSON in accept:
        return LD_JSON
    if "application/json" in accept or "*/*" in accept or "application/*" in accept or not accept.strip():
        return "application/json"
    raise ProblemError(406, "supported: application/json, application/ld+json", type=NOT_ACCEPTABLE)


def _render(request: Request, media: str, entities: list[dict[str, Any]], options: str | None) -> list[Any]:
    out = []
    for entity in entities:
        observed = entity.pop("_observed", None)
        body = key_values(entity) if options == "keyValues" else normalized(entity, observed)
        if media == LD_JSON:
            body["@context"] = CONTEXT
        out.append(body)
    return out


def public_base(request: Request) -> str:
    """The configured public base URL, else the address this server listens on.

    Never the request's ``Host``: the response is cacheable publicly, so a forged Host
    would be served to everyone (cache poisoning), and a rebinding page could choose it.
    """
    configured = get_state(request)["settings"].public_base_url
    if configured:
        return configured.rstrip("/")
    server = request.scope.get("server")
    if not server:
        return ""
    host, port = server[0], server[1]
    if ":" in host:
        host = f"[{host}]"
    scheme = request.scope.get("scheme", "http")
    default = (scheme == "http" and port == 80) or (scheme == "https" and port == 443)
    return f"{scheme}://{host}" + ("" if default or port is None else f":{port}")


def _headers(request: Request, media: str) -> dict[str, str]:
    if media == LD_JSON:
        return {}
    context_url = public_base(request) + CONTEXT_PATH
    return {
        "Link": f'<{context_url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    }


def _options(raw: str | None) -> str | None:
    if raw is None:
        return None
    values = {v.strip() for v in raw.split(",") if v.strip()}
    unknown = values - {"keyValues", "simplified", "normalized", "concise", "sysAttrs"}
    if unknown:
        raise ProblemError(400, f"unsupported options: {', '.join(sorted(unknown))}", type=BAD_REQUEST)
    return "keyValues" if values & {"keyValues", "simplified"} else None


def _responses(schema: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    return {
        200: {"content": {"application/json": {"schema": schema}, LD_JSON: {"schema": schema}}},
        406: {"description": "Not acceptable", "content": {"application/problem+json": {}}},
    }


ENTITY = {"type": "object", "required": ["id", "type"], "properties": {"id": {"type": "string"}}}


@router.get(
    "/entities",
    summary="Query entities (NGSI-LD): OffStreetParking, TrafficFlowObserved, BikeHireDockingStation",
    responses=_responses({"type": "array", "items": ENTITY}),
    response_class=Response,
)
async def query_entities(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    type: Annotated[
        str,
        Query(
            max_length=MAX_TEXT, description="Entity type(s), comma-separated", examples=["OffStreetParking"]
        ),
    ],
    options: Annotated[
        str | None, Query(max_length=MAX_TEXT, description="keyValues for the simplified form")
    ] = None,
    limit: Annotated[int, Query(ge=0, le=10_000_000, description="Entities per page (spec default 20)")] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    count: Annotated[bool, Query(description="Add NGSILD-Results-Count")] = False,
) -> Response:
    if limit > settings.api_max_page_size:
        raise ProblemError(400, f"limit: at most {settings.api_max_page_size}", type=BAD_REQUEST)
    media = _negotiate(request)
    mode = _options(options)
    types = [t for t in dict.fromkeys(x.strip() for x in type.split(",")) if t in TABLES]
    headers = _headers(request, media)
    entities: list[dict[str, Any]] = []
    remaining, skip, total = limit, offset, 0
    for kind in types:
        n = await count_sites(session, table=TABLES[kind], filters=_count_filter(kind))
        total += n
        if remaining <= 0 or skip >= n:
            skip = max(0, skip - n)
            continue
        rows = await _fetch(
            session, settings, kind, SiteFilter(), Page(limit=remaining, after=None, offset=skip)
        )
        rows = rows[:remaining]
        skip = 0
        remaining -= len(rows)
        entities.extend(rows)
    if count:
        headers["NGSILD-Results-Count"] = str(total)
    if offset + len(entities) < total and limit > 0:
        query = dict(request.query_params)
        query["offset"] = str(offset + len(entities))
        headers["Link"] = ", ".join(
            x for x in (headers.get("Link"), f'<{request.url.path}?{urlencode(query)}>; rel="next"') if x
        )
    body = _render(request, media, entities, mode)
    return Response(dumps(body), media_type=media, headers=headers)


def _count_filter(kind: str) -> SiteFilter:
    filters = SiteFilter()
    if kind == "OffStreetParking":
        filters.where.append(f"coalesce(s.site_type, '') NOT IN {ON_STREET_TYPES!r}")
        filters.where.append("s.lat IS NOT NULL AND s.lon IS NOT NULL")
    elif kind == "TrafficFlowObserved":
        filters.where.append("s.observed_at IS NOT NULL")
    else:
        filters.where.append("s.lat IS NOT NULL AND s.lon IS NOT NULL")
    return filters


@router.get(
    "/entities/{entity_id}",
    summary="One entity by its URN (NGSI-LD)",
    responses=_responses(ENTITY),
    response_class=Response,
)
async def get_entity(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    entity_id: Annotated[
        str, Path(max_length=400, examples=["urn:ngsi-ld:OffStreetParking:rennes-parking:CIT_PAR_1"])
    ],
    options: Annotated[str | None, Query(max_length=MAX_TEXT)] = None,
) -> Response:
    media = _negotiate(request)
    mode = _options(options)
    prefix, _, rest = entity_id.partition(":ngsi-ld:")
    kind, _, site = rest.partition(":")
    if prefix != "urn" or kind not in TABLES or not site:
        raise ProblemError(404, f"no entity {entity_id!r}", type=NOT_FOUND)
    rows = await _fetch(session, settings, kind, SiteFilter(ids=[unquote(site)]), Page(limit=1, after=None))
    if not rows:
        raise ProblemError(404, f"no entity {entity_id!r}", type=NOT_FOUND)
    body = _render(request, media, rows[:1], mode)[0]
    return Response(dumps(body), media_type=media, headers=_headers(request, media))


@router.get(
    "/jsonldContexts/mobility-live.jsonld",
    summary="The @context our entities use (Smart Data Models + NGSI-LD core)",
    response_class=Response,
    responses={200: {"content": {LD_JSON: {"schema": {"type": "object"}}}}},
)
async def context() -> Response:
    return Response(dumps({"@context": CONTEXT}), media_type=LD_JSON)

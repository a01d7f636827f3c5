"""Shipped field mappings for known Opendatasoft datasets.

A preset is a ``FieldMapping`` plus the few dataset habits a mapping cannot say (which
values mean "no live count", which source fields are worth keeping, a free-flow speed
field). The opendatasoft adapter picks one automatically, in this order:

1. ``mapping.preset`` names one explicitly (by preset name or dataset id);
2. the payload names its dataset (v1 ``parameters.dataset`` / ``records[].datasetid``)
   or the URL does (``/catalog/datasets/<id>/``, ``?dataset=<id>``) — and the records
   carry the preset's signature fields, since dataset ids like ``parkings`` are reused
   across portals;
3. the first record's field names contain a preset's ``signature`` (CSV and GeoJSON
   exports, Explore v2.1 pages fetched without a recognisable URL).

Field names are matched case- and accent-insensitively with spaces as underscores, so the
same preset reads API field names (``averagevehiclespeed``) and CSV export labels
(``averageVehicleSpeed``, ``Geo Shape``).

Adding a dataset: one ``OdsPreset`` below and a capture in tests/fixtures/feeds.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from ingest.spec import FieldMapping


# Cached: the same few dozen field names come back in every record of a page (3,000 per
# page in Paris), and folding them was a third of the page's parse time.
@lru_cache(maxsize=4096)
def normalize_key(name: str) -> str:
    """'Geo Shape' -> 'geo_shape', 'averageVehicleSpeed' -> 'averagevehiclespeed', 'État' -> 'etat'."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "_", folded).strip("_")


def normalize_word(value: object) -> str:
    """Status words compared without case, accents or surrounding spaces: 'Fermé' == 'FERME'."""
    return normalize_key(str(value)).replace("_", " ")


@dataclass(frozen=True)
class OdsPreset:
    name: str
    description: str
    datasets: tuple[str, ...]
    signature: frozenset[str]
    mapping: FieldMapping
    # Source field whose value is the free-flow (or maximum) speed of a traffic segment.
    free_flow: str | None = None
    site_kind: str | None = None
    # field -> values: when the record has one of them, its measured numbers are not
    # readings (a placeholder 0, a default speed) and are dropped.
    no_reading_when: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # field -> values: the site is closed (parking status / traffic congestion "closed")
    # when the status field itself says nothing more precise.
    closed_when: dict[str, tuple[str, ...]] = field(default_factory=dict)
    site_type_values: dict[str, str] = field(default_factory=dict)
    site_extra: tuple[str, ...] = ()
    observation_extra: tuple[str, ...] = ()


PRESETS: tuple[OdsPreset, ...] = (
    OdsPreset(
        name="strasbourg-parking-occupancy",
        description="Strasbourg car parks, live occupancy (occupation-parkings-temps-reel)",
        datasets=("occupation-parkings-temps-reel",),
        signature=frozenset({"idsurfs", "libre", "total", "etat_descriptif"}),
        mapping=FieldMapping(
            record_type="parking",
            # idsurfs is the key shared with the 'parkings' location dataset; 'ident' is
            # only a row number of this one.
            id="idsurfs",
            name="nom_parking",
            free="libre",
            capacity="total",
            status="etat_descriptif",
            timestamp="record_timestamp",
            status_values={
                "Ouvert": "open",
                "Fermé": "closed",
                "Complet": "full",
                "frequentation temps reel indisponible": "unknown",
            },
        ),
        no_reading_when={"etat_descriptif": ("frequentation temps reel indisponible",)},
        observation_extra=("ident", "infousager"),
    ),
    OdsPreset(
        name="strasbourg-parkings",
        description="Strasbourg car park locations and descriptions (data.strasbourg.eu parkings)",
        datasets=("parkings",),
        signature=frozenset({"idsurfs", "friendlyurl", "address"}),
        mapping=FieldMapping(record_type="parking", id="idsurfs", name="name", address="address"),
        site_extra=("friendlyurl", "types"),
    ),
    OdsPreset(
        name="rennes-parking-citedia",
        description="Rennes car parks run by Citédia, live (export-api-parking-citedia)",
        datasets=("export-api-parking-citedia",),
        signature=frozenset({"key", "free", "max", "orgahoraires"}),
        mapping=FieldMapping(
            record_type="parking",
            id="id",
            name="key",
            free="free",
            capacity="max",
            status="status",
            timestamp="record_timestamp",
            status_values={"OUVERT": "open", "FERME": "closed", "COMPLET": "full"},
        ),
        site_extra=("tarif_1h",),
    ),
    OdsPreset(
        name="basel-parkhaeuser",
        description="Basel car parks, live occupancy (data.bs.ch Explore v2.1, dataset 100088)",
        datasets=("100088", "parkhaeuser", "parkleitsystem"),
        signature=frozenset({"published", "free", "total", "lot_type"}),
        mapping=FieldMapping(
            record_type="parking",
            id="id",
            name="name",
            free="free",
            capacity="total",
            status="status",
            timestamp="published",
            address="address",
            site_type="lot_type",
            status_values={"offen": "open", "geschlossen": "closed", "voll": "full", "besetzt": "full"},
        ),
        site_type_values={"Parkhaus": "garage", "Parkplatz": "surface", "Tiefgarage": "underground"},
        site_extra=("link",),
    ),
    OdsPreset(
        name="paris-comptages-routiers-permanents",
        description="Paris permanent traffic counters per road arc, hourly (opendata.paris.fr)",
        datasets=("comptages-routiers-permanents", "comptages-routiers-permanents-historique"),
        signature=frozenset({"iu_ac", "t_1h", "etat_trafic"}),
        mapping=FieldMapping(
            record_type="traffic",
            id="iu_ac",
            name="libelle",
            geometry="geo_shape",
            flow="q",  # débit horaire, vehicles/hour
            occupancy="k",  # taux d'occupation, % of time the loop is occupied
            status="etat_trafic",
            timestamp="t_1h",
            status_values={
                "Fluide": "free",
                "Pré-saturé": "heavy",
                "Saturé": "congested",
                "Bloqué": "congested",
                "Inconnu": "unknown",
            },
        ),
        site_kind="segment",
        closed_when={"etat_barre": ("Barré",)},
        site_extra=("libelle_nd_amont", "libelle_nd_aval"),
        observation_extra=("etat_barre",),
    ),
    OdsPreset(
        name="rennes-etat-du-trafic",
        description="Rennes Métropole real-time traffic per road segment (etat-du-trafic-en-temps-reel)",
        datasets=("etat-du-trafic-en-temps-reel",),
        signature=frozenset({"predefinedlocationreference", "averagevehiclespeed", "trafficstatus"}),
        mapping=FieldMapping(
            record_type="traffic",
            id="predefinedLocationReference",
            name="denomination",
            geometry="geo_shape",
            speed="averageVehicleSpeed",
            status="trafficStatus",
            timestamp="datetime",
            status_values={
                "freeFlow": "free",
                "heavy": "heavy",
                "congested": "congested",
                "impossible": "closed",
                "unknown": "unknown",
            },
        ),
        # vitesse_maxi is the speed limit: the closest thing to a free-flow speed published.
        free_flow="vitesse_maxi",
        site_kind="segment",
        # With no probe vehicle on the segment, averageVehicleSpeed is a default, not a reading.
        no_reading_when={"vehicleProbeMeasurement": ("0",)},
        site_extra=("hierarchie",),
        observation_extra=("travelTime", "travelTimeReliability", "vehicleProbeMeasurement"),
    ),
)

BY_NAME: dict[str, OdsPreset] = {preset.name: preset for preset in PRESETS}


def find(name_or_dataset: str) -> OdsPreset | None:
    """A preset by its name or by one of its dataset ids."""
    if name_or_dataset in BY_NAME:
        return BY_NAME[name_or_dataset]
    for preset in PRESETS:
        if name_or_dataset in preset.datasets:
            return preset
    return None


def by_dataset(dataset: str, field_names: set[str]) -> OdsPreset | None:
    """The preset for a dataset id, if the record's fields (normalized) carry its signature."""
    for preset in PRESETS:
        if dataset in preset.datasets and preset.signature <= field_names:
            return preset
    return None


def by_signature(field_names: set[str]) -> OdsPreset | None:
    """The preset whose signature fields are all present (the most specific one wins)."""
    matches = [preset for preset in PRESETS if preset.signature <= field_names]
    return max(matches, key=lambda preset: len(preset.signature)) if matches else None

// Parking layer: features, hover text and MapLibre style. Colour from the server's occupancy;
// a site that is not open with a count (closed, no data) is drawn by shape, not by a colour of
// the scale: closed is a black disc with a white ring, no data a hollow grey ring; a stale
// reading keeps its colour, faded, inside an orange ring.
import { CLOSED_COLOR, NO_VALUE_COLOR, NO_VALUE_OUTLINE, OUTLINE, parkingColor, STALE_OUTLINE } from "../colors.js";
import { t } from "../i18n.js";
import { circleLayer } from "../live-layer.js";
import { record, records } from "../replay.js";
import { ageLine, escapeHtml, num, parkingSummary, staleLine, styledPoint } from "../format.js";

export function parkingRecords() {
  return records("parking");
}

export function parkingRecord(id) {
  return record("parking", id);
}

function capacityRadius(capacity) {
  const c = num(capacity);
  if (c == null || c <= 0) return 5;
  return 5 + Math.min(8, Math.sqrt(c) * 0.4);
}

export function parkingStyle(r) {
  const availability = r.availability || "no_data";
  if (availability === "closed") return { color: CLOSED_COLOR, stroke: "rgb(255,255,255)", strokeWidth: 2.5, opacity: 1 };
  const pct = num(r.occupancy_pct);
  if (availability === "no_data" || pct == null) return { color: NO_VALUE_COLOR, stroke: NO_VALUE_OUTLINE, strokeWidth: 2, opacity: 0.9 };
  const color = parkingColor(1 - pct / 100);
  if (r.stale) return { color, stroke: STALE_OUTLINE, strokeWidth: 2.5, opacity: 0.5 };
  return { color, stroke: OUTLINE, strokeWidth: 1, opacity: 0.95 };
}

export function parkingFeature(r) {
  return styledPoint(r, parkingStyle(r), {
    free: num(r.free),
    capacity: num(r.capacity),
    availability: r.availability || "no_data",
    stale: r.stale ? 1 : 0,
    radius: capacityRadius(r.capacity),
  });
}

export function parkingHover(r, now) {
  const trend = r.trend && r.trend !== "unknown" ? `<br>${escapeHtml(t(`trend_${r.trend}`))}` : "";
  return `<b>${escapeHtml(r.name || r.id)}</b><br>${escapeHtml(parkingSummary(r))}${trend}${ageLine(r, now)}${staleLine(r)}`;
}

export const parkingLayers = [circleLayer(["get", "radius"])];

// Its entry in the layer registry (layers/index.js); drawn on top: it is what commuters come for.
export const layer = {
  topic: "parking",
  url: "/api/v1/parking/sites",
  label: "layer_parking",
  z: 3,
  live: { feature: parkingFeature, hover: parkingHover, layers: parkingLayers },
  replay: ["free", "occupied", "occupancy_pct", "status"],
};

// Bike stations: coloured by the server's `fill_pct` (share of docks holding a bike); what is
// not a value is drawn by shape, as for car parks: closed is a black disc with a white ring, no
// value a hollow grey ring, a stale reading keeps its colour, faded, inside an orange ring.
import { bikesColor, CLOSED_COLOR, NO_VALUE_COLOR, NO_VALUE_OUTLINE, OUTLINE, STALE_OUTLINE } from "../colors.js";
import { t } from "../i18n.js";
import { circleLayer } from "../live-layer.js";
import { ageLine, escapeHtml, fmt, num, staleLine, styledPoint } from "../format.js";

export function bikesStyle(r) {
  const availability = r.availability || "no_data";
  if (availability === "closed") return { color: CLOSED_COLOR, stroke: "rgb(255,255,255)", strokeWidth: 2, opacity: 1 };
  const pct = num(r.fill_pct);
  if (availability === "no_data" || pct == null) return { color: NO_VALUE_COLOR, stroke: NO_VALUE_OUTLINE, strokeWidth: 2, opacity: 0.9 };
  const color = bikesColor(pct / 100);
  if (r.stale) return { color, stroke: STALE_OUTLINE, strokeWidth: 2, opacity: 0.5 };
  return { color, stroke: OUTLINE, strokeWidth: 1, opacity: 0.9 };
}

export function bikesFeature(r) {
  return styledPoint(r, bikesStyle(r), { fill_pct: num(r.fill_pct), availability: r.availability || "no_data" });
}

// "7 bikes, 13 docks · 35 % of docks hold a bike", or the status alone when it is not open.
export function bikesSummary(r) {
  const availability = r.availability || "no_data";
  if (availability !== "open") return t(`availability_${availability}`);
  const parts = [t("bikes_available", { bikes: fmt(r.bikes_available), docks: fmt(r.docks_available) })];
  if (r.fill_pct != null) parts.push(t("bikes_fill", { pct: fmt(r.fill_pct) }));
  return parts.join(" · ");
}

export function bikesHover(r, now) {
  return `<b>${escapeHtml(r.name || r.id)}</b><br>${escapeHtml(bikesSummary(r))}${ageLine(r, now)}${staleLine(r)}`;
}

export const bikesLayers = [circleLayer(4.5)];

// Its entry in the layer registry (layers/index.js).
export const layer = {
  topic: "bikes",
  url: "/api/v1/bikes/stations",
  label: "layer_bikes",
  z: 2,
  live: { feature: bikesFeature, hover: bikesHover, layers: bikesLayers },
  replay: ["bikes_available", "docks_available", "status", "fill_pct", "availability"],
};

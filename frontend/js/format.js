// Small text helpers shared by the layers' hover texts, the lists and the details card.
import { formatAge, t } from "./i18n.js";
import { ageSeconds } from "./state.js";

export function num(value) {
  return value == null || value === "" ? null : Number(value);
}

export function fmt(value, digits = 0) {
  return value == null || !Number.isFinite(Number(value)) ? "–" : Number(value).toFixed(digits);
}

export function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

export function staleText(record) {
  if (!record.stale) return "";
  return record.stale_reason ? t("stale_because", { reason: t(`stale_reason_${record.stale_reason}`) }) : t("stale");
}

export function staleLine(record) {
  const text = staleText(record);
  return text ? `<br><b>${escapeHtml(text)}</b>` : "";
}

export function ageLine(record, now) {
  return `<br>${escapeHtml(t("updated_ago", { age: formatAge(ageSeconds(record, now)) }))}`;
}

export function point(r) {
  return r.lat == null || r.lon == null ? null : { type: "Point", coordinates: [Number(r.lon), Number(r.lat)] };
}

// A point site's GeoJSON Feature for the map: its own properties, then its style's (the
// MapLibre layers read `color`, `stroke`, `stroke_width` and `opacity`). Null without a position.
export function styledPoint(r, style, properties) {
  const geometry = point(r);
  if (!geometry) return null;
  const { color, stroke, strokeWidth, opacity } = style;
  return {
    type: "Feature",
    geometry,
    properties: { id: r.id, ...properties, color, stroke, stroke_width: strokeWidth, opacity },
  };
}

export function lineCoordinates(geometry) {
  if (!geometry) return null;
  if (geometry.type === "LineString") return [geometry.coordinates];
  if (geometry.type === "MultiLineString") return geometry.coordinates;
  return null;
}

// A car park's values in words, from the server's derived fields: "264 free of 500 · 47 % full",
// or its status alone when it is not open with a count ("Closed", "No data").
export function parkingSummary(r) {
  const availability = r.availability || "no_data";
  if (availability === "closed" || availability === "no_data") return t(`availability_${availability}`);
  const parts = [t("free_of", { free: fmt(r.free), capacity: fmt(r.capacity) })];
  if (r.occupancy_pct != null) parts.push(t("pct_full", { pct: fmt(r.occupancy_pct) }));
  if (availability === "full") parts.push(t("availability_full"));
  return parts.join(" · ");
}

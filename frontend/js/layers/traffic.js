// Traffic layer: roads and sensors coloured by the server's congestion `level`. A road with no
// level, or a stale reading, is a thin dashed grey line (its own style layer), so "no value" is
// told apart by shape, not by a colour next to "free".
import { NO_VALUE_OUTLINE, OUTLINE, trafficColor, trafficWidth } from "../colors.js";
import { t } from "../i18n.js";
import { ageLine, escapeHtml, fmt, lineCoordinates, point, staleLine } from "../format.js";

export function trafficFeature(r) {
  const lines = lineCoordinates(r.geometry);
  const geometry = lines ? { type: "MultiLineString", coordinates: lines } : point(r);
  if (!geometry) return null;
  const level = r.stale ? null : r.level || null;
  return {
    type: "Feature",
    geometry,
    properties: {
      id: r.id,
      level: r.stale ? "stale" : level || "unknown",
      valued: level ? 1 : 0,
      color: level ? trafficColor(level) : NO_VALUE_OUTLINE,
      width: level ? trafficWidth(level) : 2,
      opacity: level ? 0.9 : 0.8,
    },
  };
}

export function trafficHover(r, now) {
  const ratio = r.speed_ratio; // the server's, with the speed it derives from
  const speed =
    r.speed_kmh == null
      ? ""
      : `<br>${escapeHtml(t("speed", { speed: fmt(r.speed_kmh), ratio: ratio == null ? "–" : fmt(ratio * 100) }))}`;
  const flow = r.flow_vph == null ? "" : `<br>${escapeHtml(t("flow", { flow: fmt(r.flow_vph) }))}`;
  const occupancy = r.occupancy_pct == null ? "" : `<br>${escapeHtml(t("road_occupancy", { pct: fmt(r.occupancy_pct) }))}`;
  const congestion = `<br>${escapeHtml(t(`congestion_${r.level || "unknown"}`))}`;
  const name = String(r.name || r.road || r.id).replaceAll("_", " ");
  return `<b>${escapeHtml(name)}</b>${congestion}${speed}${flow}${occupancy}${ageLine(r, now)}${staleLine(r)}`;
}

const VALUED = ["==", ["get", "valued"], 1];
const LINE = ["==", ["geometry-type"], "LineString"];
const POINT = ["==", ["geometry-type"], "Point"];

export const trafficLayers = [
  {
    suffix: "lines-none",
    type: "line",
    filter: ["all", LINE, ["!", VALUED]],
    paint: { "line-color": NO_VALUE_OUTLINE, "line-opacity": 0.8, "line-width": 2, "line-dasharray": [2, 2] },
  },
  {
    suffix: "lines",
    type: "line",
    filter: ["all", LINE, VALUED],
    layout: { "line-cap": "round", "line-join": "round" },
    paint: { "line-color": ["get", "color"], "line-opacity": ["get", "opacity"], "line-width": ["get", "width"] },
  },
  {
    suffix: "points",
    type: "circle",
    filter: POINT,
    paint: {
      "circle-color": ["case", VALUED, ["get", "color"], "rgb(255,255,255)"],
      "circle-opacity": ["get", "opacity"],
      "circle-radius": 4.5,
      "circle-stroke-color": ["case", VALUED, OUTLINE, NO_VALUE_OUTLINE],
      "circle-stroke-width": 1,
    },
  },
];

// Its entry in the layer registry (layers/index.js); drawn under the sites.
export const layer = {
  topic: "traffic",
  url: "/api/v1/traffic/sites",
  label: "layer_traffic",
  z: 1,
  live: { feature: trafficFeature, hover: trafficHover, layers: trafficLayers },
  replay: ["speed_kmh", "flow_vph", "occupancy_pct", "congestion", "level"],
};

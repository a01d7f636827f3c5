// Bike stations: colour by the share of docks holding a bike; no value is a hollow grey ring.
import { bikesColor, bikesShare, NO_VALUE_OUTLINE, OUTLINE, STALE_OUTLINE } from "../colors.js";
import { t } from "../i18n.js";
import { circleLayer } from "../live-layer.js";
import { ageLine, escapeHtml, fmt, point, staleLine } from "../format.js";

export function bikesFeature(r) {
  const geometry = point(r);
  if (!geometry) return null;
  const share = bikesShare(r);
  return {
    type: "Feature",
    geometry,
    properties: {
      id: r.id,
      share,
      color: bikesColor(share),
      stroke: share == null ? NO_VALUE_OUTLINE : r.stale ? STALE_OUTLINE : OUTLINE,
      stroke_width: r.stale ? 2 : 1,
      opacity: r.stale ? 0.5 : 0.9,
    },
  };
}

export function bikesHover(r, now) {
  return `<b>${escapeHtml(r.name || r.id)}</b><br>${escapeHtml(t("bikes_available", { bikes: fmt(r.bikes_available), docks: fmt(r.docks_available) }))}${ageLine(r, now)}${staleLine(r)}`;
}

export const bikesLayers = [circleLayer(4.5)];

// Its entry in the layer registry (layers/index.js).
export const layer = {
  topic: "bikes",
  url: "/api/v1/bikes/stations",
  label: "layer_bikes",
  z: 2,
  live: { feature: bikesFeature, hover: bikesHover, layers: bikesLayers },
  replay: ["bikes_available", "docks_available", "status"],
};

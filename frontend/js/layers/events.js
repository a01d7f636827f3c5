// Traffic events: few and rarely changing, so a Plotly trace (with Plotly's own hover).
import { EVENT_COLOR } from "../colors.js";
import { t } from "../i18n.js";
import { ageLine, escapeHtml, lineCoordinates } from "../format.js";
import { state } from "../state.js";

export function eventsTrace(now, visible) {
  const lat = [];
  const lon = [];
  const text = [];
  for (const r of state.records.events.values()) {
    if (r.active === false) continue;
    let la = r.lat;
    let lo = r.lon;
    const lines = lineCoordinates(r.geometry);
    if ((la == null || lo == null) && lines && lines[0].length) [lo, la] = lines[0][0];
    if (la == null || lo == null) continue;
    lat.push(la);
    lon.push(lo);
    text.push(
      `<b>${escapeHtml(t("event", { type: r.event_type || "", description: r.description || "" }))}</b>` +
        (r.road ? `<br>${escapeHtml(r.road)}` : "") +
        ageLine(r, now),
    );
  }
  return {
    uid: "events",
    name: t("layer_events"),
    type: "scattermap",
    mode: "markers",
    lat,
    lon,
    text,
    hoverinfo: "text",
    marker: { color: EVENT_COLOR, size: 13, opacity: 0.85 },
    visible,
  };
}

// Its entry in the layer registry (layers/index.js): a Plotly trace, and not sites to frame.
export const layer = {
  topic: "events",
  url: "/api/v1/traffic/events",
  label: "layer_events",
  trace: eventsTrace,
  site: false,
};

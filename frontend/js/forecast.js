// Forecasts from the server (/api/v1/parking/sites/{id}/forecast): a dashed line ahead of "now"
// on the planner's chart, and one sentence per site in the near-me list. The server computes
// every number; this module only draws and words them. A site without a forecast says why.
import { getJson } from "./api.js";
import { language, t } from "./i18n.js";
import { state } from "./state.js";

// Near me: the horizon a commuter plans an arrival with.
const NEAR_HORIZON_MIN = 30;
// A forecast is made from the site's last reading: fetched again when the page holds a newer
// one (live deltas move observed_at), and at most this long after it failed.
const RETRY_MS = 60_000;
const cache = new Map(); // id -> { reading, at, promise }

function reading(id) {
  return state.records.parking.get(String(id))?.observed_at ?? null;
}

export function fetchForecast(id) {
  const now = reading(id);
  const hit = cache.get(id);
  if (hit && hit.reading === now && !(hit.failed && Date.now() - hit.at > RETRY_MS)) return hit.promise;
  const entry = { reading: now, at: Date.now(), failed: false };
  entry.promise = getJson(`/api/v1/parking/sites/${encodeURIComponent(id)}/forecast`).catch(() => {
    entry.failed = true;
    return null;
  });
  cache.set(id, entry);
  return entry.promise;
}

// The forecast as Plotly traces in occupancy % (the chart's unit): the range as a light band,
// the point forecast as a dashed line starting from the reading it was made from.
export function forecastTraces(forecast) {
  const points = (forecast?.horizons || []).filter((h) => h.occupancy != null);
  if (forecast?.status !== "ok" || !points.length) return [];
  const x = points.map((h) => h.at);
  const now = forecast.current_occupancy;
  const start = now != null && forecast.origin ? [forecast.origin] : [];
  const first = start.length ? [100 * now] : [];
  return [
    { x, y: points.map((h) => 100 * h.high), type: "scatter", mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false },
    {
      x,
      y: points.map((h) => 100 * h.low),
      type: "scatter",
      mode: "lines",
      fill: "tonexty",
      fillcolor: "rgba(59,28,140,0.12)",
      line: { width: 0 },
      name: t("chart_forecast_range"),
      hoverinfo: "skip",
    },
    {
      x: [...start, ...x],
      y: [...first, ...points.map((h) => 100 * h.occupancy)],
      type: "scatter",
      mode: "lines+markers",
      marker: { size: 4 },
      line: { dash: "dash", color: "rgb(59,28,140)" },
      name: t("chart_forecast"),
    },
  ];
}

// Adds the forecast to a chart already drawn for parking site `id`; `stillShown` guards against
// a newer selection drawn meanwhile.
export async function addForecast(chart, id, stillShown = () => true) {
  const forecast = await fetchForecast(id);
  if (!stillShown()) return;
  const traces = forecastTraces(forecast);
  if (traces.length) await Plotly.addTraces(chart, traces);
}

// "about 40 free at 9:30, usually filling", or why there is no forecast.
export function forecastPhrase(forecast) {
  if (!forecast) return "";
  if (forecast.status === "insufficient_history") return t("forecast_too_little");
  if (forecast.status !== "ok") return t("forecast_none", { reason: forecast.reason || forecast.status });
  // The forecast starts at the last reading, which may be a while ago: only times still ahead.
  const ahead = forecast.horizons.filter((x) => x.free != null && new Date(x.at).getTime() > Date.now());
  const h = ahead.find((x) => x.horizon_min >= NEAR_HORIZON_MIN) || ahead[0];
  if (!h) {
    const reason = forecast.horizons.find((x) => x.reason)?.reason;
    return reason ? t("forecast_none", { reason }) : t("forecast_past");
  }
  return t("forecast_near", {
    free: h.free,
    time: new Intl.DateTimeFormat(language(), { timeStyle: "short" }).format(new Date(h.at)),
    trend: t(`forecast_${h.trend || "steady"}`),
  });
}

async function annotate(item) {
  const id = item.dataset.id;
  const key = `${id}@${reading(id)}`;
  if (!id || (item.dataset.forecastFor === key && item.querySelector(".site-forecast"))) return;
  item.dataset.forecastFor = key;
  const phrase = forecastPhrase(await fetchForecast(id));
  if (!phrase || item.dataset.forecastFor !== key) return;
  const target = item.querySelector("button") || item;
  let span = target.querySelector(".site-forecast");
  if (!span) {
    span = document.createElement("span");
    span.className = "site-forecast";
    target.append(span);
  }
  span.textContent = phrase;
  const label = target.getAttribute("aria-label");
  if (label && !label.includes(phrase)) target.setAttribute("aria-label", `${label}, ${phrase}`);
}

// Near me: each listed site gets its forecast sentence, whenever the list is (re)drawn.
export function watchNearList(list = document.getElementById("near-list")) {
  if (!list) return;
  const run = () => {
    for (const item of list.querySelectorAll("li[data-id]")) annotate(item);
  };
  new MutationObserver(run).observe(list, { childList: true, subtree: true });
  run();
}

// Started on import, so the pages that draw the near-me list need no change to get forecasts.
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", () => watchNearList());
} else {
  watchNearList();
}

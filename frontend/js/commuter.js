// Commuter view: the nearest open sites with free spaces around the browser's position or a
// point tapped on the map, as a keyboard-usable list that stays live: values and ages follow the
// live feed, a site that closes or fills drops to the end (marked), and the order never changes
// under the finger (while the list is hovered or focused).
import { featuresToRecords, getJson } from "./api.js";
import { formatAge, formatDistance, t } from "./i18n.js";
import { parkingSummary, staleText } from "./format.js";
import { frameBox, map, requestRender } from "./map.js";
import { expand } from "./sheet.js";
import { ageSeconds, state } from "./state.js";

const NEAR_RADIUS_M = 5000;
const NEAR_LIMIT = 10;

export const commuter = { results: [], query: null, onChoose: null, onLocated: null };

let controller = null;

function status(text) {
  document.getElementById("near-status").textContent = text;
}

function current(r) {
  // The live value the page holds wins: it may be newer than the search answer.
  return { ...r, ...(state.records.parking.get(String(r.id)) || {}), distance_m: r.distance_m };
}

function usable(r) {
  return r.availability === "open" && Number(r.free) > 0;
}

export async function searchNear(lat, lon, { frame = true } = {}) {
  controller?.abort();
  controller = new AbortController();
  commuter.query = { lat, lon };
  map.me = { lat, lon };
  state.dirty.add("me");
  requestRender();
  commuter.onLocated?.(lat, lon);
  const where = { lat: lat.toFixed(4), lon: lon.toFixed(4) };
  status(t("near_searching", where));
  let records;
  try {
    const collection = await getJson(
      "/api/v1/parking/sites",
      { near: `${lat},${lon}`, radius: NEAR_RADIUS_M, limit: NEAR_LIMIT, min_free: 1 },
      { signal: controller.signal },
    );
    records = featuresToRecords(collection);
  } catch (error) {
    if (error.name === "AbortError") return;
    status(t("near_failed", { detail: error.detail || error.message }));
    commuter.results = [];
    render();
    return;
  }
  commuter.results = records.map(current).filter(usable);
  render();
  status(commuter.results.length ? t("near_found", { n: commuter.results.length, ...where }) : t("near_none"));
  // On a phone the answers rise in the bottom sheet, and the map frames them above it.
  if (commuter.results.length) expand("half");
  if (frame) frameResults();
}

// The map shows the point and its answers together (above the bottom sheet on a phone: frameBox).
function frameResults() {
  const { lat, lon } = commuter.query;
  let box = [lon, lat, lon, lat];
  for (const r of commuter.results) {
    if (r.lat == null || r.lon == null) continue;
    box = [Math.min(box[0], r.lon), Math.min(box[1], r.lat), Math.max(box[2], r.lon), Math.max(box[3], r.lat)];
  }
  const pad = Math.max(0.002, (box[2] - box[0]) * 0.1, (box[3] - box[1]) * 0.1);
  return frameBox([box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad]);
}

function ordered() {
  const list = document.getElementById("near-list");
  const rows = commuter.results.map(current);
  const held = list.matches(":hover") || list.contains(document.activeElement);
  if (held) return rows; // no reordering under the finger
  // Open with spaces first, nearest first; a site that closed or filled since goes last.
  return rows.sort((a, b) => Number(usable(b)) - Number(usable(a)) || a.distance_m - b.distance_m);
}

function parts(r) {
  const out = [
    usable(r) ? parkingSummary(r) : `${t("near_no_longer")} (${parkingSummary(r)})`,
    t("distance", { d: formatDistance(r.distance_m) }),
    r.trend ? t(`trend_${r.trend}`) : t("trend_unknown"),
    t("updated_ago", { age: formatAge(ageSeconds(r)) }),
  ];
  const stale = staleText(r);
  if (stale) out.push(stale);
  return out;
}

// Keyed by id: existing rows are updated in place, so a live update does not rebuild the list.
export function render() {
  const list = document.getElementById("near-list");
  const existing = new Map([...list.children].map((li) => [li.dataset.id, li]));
  const rows = ordered();
  const items = rows.map((r) => {
    let item = existing.get(String(r.id));
    if (!item) {
      item = document.createElement("li");
      item.dataset.id = r.id;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "site-button";
      const name = document.createElement("span");
      name.className = "site-name";
      const details = document.createElement("span");
      details.className = "site-details";
      button.append(name, details);
      button.addEventListener("click", () => commuter.onChoose?.(current(commuter.results.find((x) => String(x.id) === item.dataset.id) || r)));
      item.append(button);
    }
    item.className = `site availability-${usable(r) ? "open" : r.availability || "no_data"}${r.stale ? " is-stale" : ""}`;
    item.dataset.distance = r.distance_m;
    item.dataset.free = r.free ?? "";
    const text = parts(r);
    item.querySelector(".site-name").textContent = r.name || r.id;
    item.querySelector(".site-details").textContent = text.join(" · ");
    // The forecast sentence (forecast.js) is part of what a screen reader hears, ticks or not.
    const forecast = item.querySelector(".site-forecast")?.textContent;
    const label = `${r.name || r.id}: ${text.join(", ")}${forecast ? `, ${forecast}` : ""}`;
    item.querySelector("button").setAttribute("aria-label", label);
    return item;
  });
  const same = items.length === list.children.length && items.every((item, i) => list.children[i] === item);
  if (!same) list.replaceChildren(...items);
}

export function locate() {
  if (!navigator.geolocation) {
    status(t("near_denied"));
    return;
  }
  status(t("near_locating"));
  navigator.geolocation.getCurrentPosition(
    (position) => searchNear(position.coords.latitude, position.coords.longitude),
    () => status(t("near_denied")),
    { enableHighAccuracy: false, timeout: 10000, maximumAge: 60000 },
  );
}

// Commuter view: the nearest sites with free spaces around the browser's position or a point
// clicked on the map, as a keyboard-usable list (the map's accessible alternative).
import { featuresToRecords, getJson } from "./api.js";
import { formatAge, formatDistance, t } from "./i18n.js";
import { map, requestRender } from "./map.js";
import { ageSeconds, state } from "./state.js";

const NEAR_RADIUS_M = 5000;
const NEAR_LIMIT = 10;
// The local fallback looks at this many before dropping full sites.
const NEAR_FETCH = 50;

export const commuter = { results: [], query: null, onChoose: null };

let controller = null;

function haversine(lat1, lon1, lat2, lon2) {
  const rad = Math.PI / 180;
  const a =
    Math.sin(((lat2 - lat1) * rad) / 2) ** 2 +
    Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(((lon2 - lon1) * rad) / 2) ** 2;
  return 2 * 6371008.8 * Math.asin(Math.sqrt(a));
}

// Used when the REST search is unavailable: the same answer from what the page already holds.
function nearestLocally(lat, lon) {
  return [...state.records.parking.values()]
    .filter((r) => r.lat != null && r.lon != null)
    .map((r) => ({ ...r, distance_m: haversine(lat, lon, r.lat, r.lon) }))
    .filter((r) => r.distance_m <= NEAR_RADIUS_M)
    .sort((a, b) => a.distance_m - b.distance_m)
    .slice(0, NEAR_FETCH);
}

function status(text) {
  document.getElementById("near-status").textContent = text;
}

export async function searchNear(lat, lon) {
  controller?.abort();
  controller = new AbortController();
  commuter.query = { lat, lon };
  map.me = { lat, lon };
  state.dirty.add("me");
  requestRender();
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
    records = nearestLocally(lat, lon);
  }
  // Prefer the live value the page holds: it may be newer than the search answer.
  records = records.map((r) => ({ ...r, ...(state.records.parking.get(String(r.id)) || {}), distance_m: r.distance_m }));
  commuter.results = records
    .filter((r) => r.free != null && Number(r.free) > 0)
    .sort((a, b) => a.distance_m - b.distance_m)
    .slice(0, NEAR_LIMIT);
  render();
  status(commuter.results.length ? t("near_found", { n: commuter.results.length, ...where }) : t("near_none"));
}

export function render() {
  const list = document.getElementById("near-list");
  list.replaceChildren(
    ...commuter.results.map((r) => {
      const item = document.createElement("li");
      item.className = "site" + (r.stale ? " is-stale" : "");
      item.dataset.id = r.id;
      item.dataset.distance = r.distance_m;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "site-button";
      const trend = r.trend ? t(`trend_${r.trend}`) : t("trend_unknown");
      const parts = [
        t("free_of", { free: r.free ?? "–", capacity: r.capacity ?? "–" }),
        t("distance", { d: formatDistance(r.distance_m) }),
        trend,
        t("updated_ago", { age: formatAge(ageSeconds(r)) }),
      ];
      if (r.stale) parts.push(r.stale_reason ? t("stale_because", { reason: r.stale_reason }) : t("stale"));
      const name = document.createElement("span");
      name.className = "site-name";
      name.textContent = r.name || r.id;
      const details = document.createElement("span");
      details.className = "site-details";
      details.textContent = parts.join(" · ");
      button.append(name, details);
      button.setAttribute("aria-label", `${r.name || r.id}: ${parts.join(", ")}`);
      button.addEventListener("click", () => commuter.onChoose?.(r));
      item.append(button);
      return item;
    }),
  );
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

// Replay: the map, the list and the planner's summary show every layer as it was at a past
// instant. Positions and names stay the live sites'; values come from the /…/at answers. A site
// with no reading at that time has no value (drawn as such), never a live value under the banner.
import { state } from "./state.js";

export const replay = { time: null, topics: null }; // topics: {parking|traffic|bikes: Map id -> past}

const VALUES = {
  parking: ["free", "occupied", "occupancy_pct", "status"],
  traffic: ["speed_kmh", "flow_vph", "occupancy_pct", "congestion", "level"],
  bikes: ["bikes_available", "docks_available", "status"],
};

export function replaying(topic) {
  return Boolean(replay.topics && replay.topics[topic]);
}

function replayed(topic, site) {
  const past = replay.topics[topic].get(String(site.id));
  const out = {
    ...site,
    observed_at: past?.observed_at ?? null,
    received_at: null,
    stale: false,
    stale_reason: null,
    trend: null,
    replay_missing: !past,
  };
  for (const field of VALUES[topic]) out[field] = past?.[field] ?? null;
  if (past?.capacity != null) out.capacity = past.capacity;
  if (topic === "parking") out.availability = past?.availability ?? "no_data";
  return out;
}

export function records(topic) {
  const live = state.records[topic];
  if (!replaying(topic)) return [...live.values()];
  return [...live.values()].map((site) => replayed(topic, site));
}

export function record(topic, id) {
  const site = state.records[topic].get(id);
  return site && replaying(topic) ? replayed(topic, site) : site;
}

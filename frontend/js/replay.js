// Replay: the map, the list and the planner's summary show every layer as it was at a past
// instant. Positions and names stay the live sites'; values come from the /…/at answers. A site
// with no reading at that time has no value (drawn as such), never a live value under the banner.
import { layer } from "./layers/index.js";
import { state } from "./state.js";

export const replay = { time: null, topics: null }; // topics: {topic: Map id -> past}

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
  for (const field of layer(topic)?.replay || []) out[field] = past?.[field] ?? null;
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

// Client-side current state: one Map per topic, id -> record with the REST field names. Derived
// values (occupancy_pct, availability, level) come from the server with the values they derive
// from; nothing here computes them.
// Deltas and snapshots only mark topics dirty, with the ids that changed, so the map patches
// those features instead of rebuilding thousands for one delta.
// `feeds` and then every map layer's topic, as layers/index.js finds them (addTopic).
export const TOPICS = ["feeds"];

export const state = {
  records: Object.fromEntries(TOPICS.map((topic) => [topic, new Map()])),
  dirty: new Set(),
  // topic -> Set of changed ids, or ALL when the topic was replaced (snapshot, REST reload).
  changed: new Map(),
  lastSeq: null,
  deltasApplied: 0,
  lastDeltaSeq: null,
  clockOffsetMs: 0, // server clock minus this browser's
};

// A topic the page holds records of, from its layer module (layers/index.js).
export function addTopic(topic) {
  if (TOPICS.includes(topic)) return;
  TOPICS.push(topic);
  state.records[topic] = new Map();
}

const dirtyListeners = [];

export function onDirty(fn) {
  dirtyListeners.push(fn);
}

export const ALL = "all";

export function markDirty(topic, id = ALL) {
  state.dirty.add(topic);
  const changed = state.changed.get(topic);
  if (id === ALL) state.changed.set(topic, ALL);
  else if (changed !== ALL) {
    if (changed) changed.add(id);
    else state.changed.set(topic, new Set([id]));
  }
  for (const fn of dirtyListeners) fn(topic);
}

// The dirty topics and, per topic, the changed ids (or ALL); both are cleared.
export function takeDirty() {
  const topics = new Set(state.dirty);
  const changed = state.changed;
  state.dirty.clear();
  state.changed = new Map();
  return { topics, changed };
}

export function replaceTopic(topic, records) {
  const map = new Map();
  for (const record of records) {
    if (record.id != null) map.set(String(record.id), record);
  }
  state.records[topic] = map;
  markDirty(topic);
}

// A snapshot is authoritative for which ids exist; fields REST already gave us that the live
// protocol does not carry (trend, distance) are kept.
export function mergeSnapshot(topic, items) {
  const previous = state.records[topic];
  const next = new Map();
  for (const item of items) {
    const id = String(item.id);
    const record = { ...(previous.get(id) || {}), ...(item.fields || {}), id };
    if (item.feed != null) record.feed = item.feed;
    if (item.observed_at !== undefined) record.observed_at = item.observed_at;
    if (item.received_at !== undefined) record.received_at = item.received_at;
    next.set(id, record);
  }
  state.records[topic] = next;
  markDirty(topic);
}

export function applyDelta(message) {
  const topic = message.topic;
  if (!state.records[topic]) return false;
  const id = String(message.id);
  const map = state.records[topic];
  const record = map.get(id) || { id, feed: message.feed };
  Object.assign(record, message.fields || {});
  // A delta that carries no reading (a stale flip, a static change) has a null observed_at:
  // the site's reading time is unchanged, not unknown.
  if (message.observed_at != null) record.observed_at = message.observed_at;
  if (message.received_at != null) record.received_at = message.received_at;
  if (message.fields && "stale" in message.fields && !message.fields.stale) record.stale_reason = null;
  map.set(id, record);
  state.deltasApplied += 1;
  if (message.seq != null) {
    state.lastDeltaSeq = message.seq;
    if (state.lastSeq == null || message.seq > state.lastSeq) state.lastSeq = message.seq;
  }
  markDirty(topic, id);
  return true;
}

// The server's clock, as told by the live feed (hello, heartbeat): ages are measured against it,
// so a browser whose clock is off does not show "updated 5 min ago" for a fresh value.
export function setServerTime(iso) {
  const t = Date.parse(iso);
  if (Number.isFinite(t)) state.clockOffsetMs = t - Date.now();
}

export function serverNow() {
  return Date.now() + state.clockOffsetMs;
}

export function ageSeconds(record, now = serverNow()) {
  const stamp = record.observed_at || record.received_at;
  if (!stamp) return null;
  const t = Date.parse(stamp);
  return Number.isFinite(t) ? (now - t) / 1000 : null;
}

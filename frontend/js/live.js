// The /ws client: subscribe, collect snapshot chunks, apply deltas, and reconnect with
// `since` so a dropped connection resumes without losing or replaying changes.
import { applyDelta, mergeSnapshot, setServerTime, state, TOPICS } from "./state.js";

const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 30000;

export class LiveClient {
  constructor({ onStatus, onFeeds, filter = null }) {
    this.filter = filter; // the live protocol's filter: the chosen city's bbox, or null for all
    this.onStatus = onStatus;
    this.onFeeds = onFeeds;
    this.socket = null;
    this.backoff = BACKOFF_START_MS;
    this.timer = null;
    this.pending = new Map(); // snapshot seq -> {chunks, received, items}
    this.topics = TOPICS;
    this.buffered = [];
    this.stopped = false;
  }

  url() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}/ws`;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000);
  }

  connect() {
    this.onStatus("connecting");
    let socket;
    try {
      socket = new WebSocket(this.url());
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", () => {
      if (this.socket === socket) this.socket = null;
      if (!this.stopped) this.scheduleReconnect();
    });
    // A failed connection fires 'error' then 'close': reconnecting is handled on close.
    socket.addEventListener("error", () => {});
  }

  scheduleReconnect() {
    clearTimeout(this.timer);
    const delay = Math.min(this.backoff, BACKOFF_MAX_MS);
    // Jitter spreads the reconnects of many dashboards after a server restart.
    const jittered = delay * (0.8 + Math.random() * 0.4);
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    this.onStatus("offline", Math.round(jittered / 1000));
    this.timer = setTimeout(() => this.connect(), jittered);
  }

  // A new filter replaces the subscription (the protocol's rule): a fresh snapshot follows, which
  // replaces what the page holds.
  // With `since` (the seq of freshly loaded REST state) the server resumes from it instead.
  setFilter(filter, since = null) {
    this.filter = filter;
    const subscribe = { type: "subscribe", topics: this.topics };
    if (filter) subscribe.filter = filter;
    if (since != null) {
      subscribe.since = since;
      state.lastSeq = since;
    } else {
      state.lastSeq = null;
    }
    this.pending.clear();
    this.buffered = [];
    this.send(subscribe);
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  receive(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch {
      return;
    }
    this.handle(message);
  }

  handle(message) {
    if (message.server_time) setServerTime(message.server_time);
    switch (message.type) {
      case "hello": {
        // Subscribe to what this connection may see (a public connection may see fewer topics).
        this.topics = Array.isArray(message.topics) ? TOPICS.filter((topic) => message.topics.includes(topic)) : TOPICS;
        const subscribe = { type: "subscribe", topics: this.topics };
        if (this.filter) subscribe.filter = this.filter;
        if (state.lastSeq != null) subscribe.since = state.lastSeq;
        this.pending.clear();
        this.buffered = [];
        this.send(subscribe);
        break;
      }
      case "snapshot":
        this.snapshotChunk(message);
        break;
      case "snapshot_end":
        this.finishSnapshot(message.seq);
        break;
      case "delta":
        if (this.pending.size) {
          // Applied after the snapshot, which would otherwise overwrite them with older values.
          this.buffered.push(message);
          break;
        }
        if (state.lastSeq != null && message.seq != null && message.seq <= state.lastSeq) break; // replayed
        applyDelta(message);
        if (message.topic === "feeds") this.onFeeds?.();
        this.live();
        break;
      case "heartbeat":
        this.live();
        break;
      case "reset":
        // The server cannot resume from our seq (outside its window): a fresh snapshot follows.
        state.lastSeq = null;
        this.pending.clear();
        this.buffered = [];
        break;
      case "subscribed":
        this.live();
        break;
      case "error":
        console.warn("live feed:", message.code, message.message);
        break;
      default:
        break;
    }
  }

  live() {
    this.backoff = BACKOFF_START_MS;
    this.onStatus("live");
  }

  // Chunks of one snapshot share its seq and may mix topics; the snapshot is applied whole,
  // on `snapshot_end` (or the last chunk), so the map never shows half of one.
  snapshotChunk(message) {
    let entry = this.pending.get(message.seq);
    if (!entry) {
      entry = { chunks: message.chunks || 1, received: 0, items: [] };
      this.pending.clear();
      this.pending.set(message.seq, entry);
    }
    entry.items.push(...(message.items || []));
    entry.received += 1;
    if (entry.received >= entry.chunks) this.finishSnapshot(message.seq);
  }

  finishSnapshot(seq) {
    const entry = this.pending.get(seq);
    if (!entry) return;
    this.pending.delete(seq);
    const byTopic = new Map(this.topics.map((topic) => [topic, []]));
    for (const item of entry.items) {
      if (!byTopic.has(item.topic)) byTopic.set(item.topic, []);
      byTopic.get(item.topic).push(item);
    }
    for (const [topic, items] of byTopic) mergeSnapshot(topic, items);
    if (byTopic.has("feeds")) this.onFeeds?.();
    if (seq != null && (state.lastSeq == null || seq > state.lastSeq)) state.lastSeq = seq;
    const buffered = this.buffered;
    this.buffered = [];
    for (const delta of buffered) this.handle(delta);
    this.live();
  }
}

// The layer registry: which map layers this page has, found from the server's topics instead of
// a list kept here. /api/v1/meta names every topic of the registry (kernel/topics.py); for each
// one with a position the page imports `./<topic>.js`, whose `layer` export describes it:
//
//   topic    the topic name (as the server spells it)
//   url      its REST list (default: /api/v1/<topic>/sites, the route every generated topic has)
//   label    the i18n key of its toggle (and legend title)
//   live     { feature, hover, layers } for a LiveLayer (live-layer.js), or
//   trace    (now, visible) => a Plotly trace, for a layer drawn by Plotly (events)
//   z        drawing order, higher on top (default 0)
//   site     its records are sites: they count for a city's box and framing (default true)
//   replay   the fields the planner's slider replaces with past values (topics with history)
//   legend   [{ color, outline, label }]: the legend row built for a layer index.html lacks
//   strings  { en: {...}, fr: {...}, fi: {...} }: its own strings, merged into i18n at load
//            (tests/frontend/test_i18n.py checks them like the language files)
//
// So a fifth topic's frontend is its module. A topic with a position and no module is skipped
// loudly: a console warning, the error banner, and `window.mobility.layers.skipped`.
import { addStrings } from "../i18n.js";
import { addTopic } from "../state.js";

// Used only when the service description could not be read: the page still draws what it knows.
const FALLBACK = [
  { topic: "parking", position: true, history: true },
  { topic: "traffic", position: true, history: true },
  { topic: "bikes", position: true, history: true },
  { topic: "events", position: true, history: false },
];

export const layers = {
  list: [], // descriptors, in the server's topic order
  byTopic: new Map(),
  skipped: [], // [{topic, reason}]
};

function describe(topic, history, layer) {
  return {
    url: `/api/v1/${topic}/sites`,
    z: 0,
    site: true,
    replay: [],
    legend: null,
    strings: null,
    ...layer,
    history,
  };
}

// Imports the layer module of every topic with a position; resolves once all are known.
export async function loadLayers(topics) {
  const wanted = (Array.isArray(topics) && topics.length ? topics : FALLBACK).filter((t) => t && t.position);
  const loaded = await Promise.all(
    wanted.map(async ({ topic, history }) => {
      if (!/^[a-z][a-z0-9_]*$/.test(topic)) return { topic, reason: "not a topic name" };
      try {
        const module = await import(`./${topic}.js`);
        if (!module.layer || module.layer.topic !== topic) return { topic, reason: `layers/${topic}.js exports no layer for it` };
        return { topic, layer: describe(topic, Boolean(history), module.layer) };
      } catch (error) {
        return { topic, reason: `layers/${topic}.js could not be loaded (${error.message})` };
      }
    }),
  );
  for (const entry of loaded) {
    if (!entry.layer) {
      console.warn(`map layer skipped: ${entry.topic}: ${entry.reason}`);
      layers.skipped.push({ topic: entry.topic, reason: entry.reason });
      continue;
    }
    layers.list.push(entry.layer);
    layers.byTopic.set(entry.topic, entry.layer);
    addTopic(entry.topic);
    if (entry.layer.strings) addStrings(entry.layer.strings);
  }
  return layers;
}

export function layer(topic) {
  return layers.byTopic.get(topic) || null;
}

// Topics whose records are sites (framing, areas).
export function siteTopics() {
  return layers.list.filter((l) => l.site).map((l) => l.topic);
}

// Topics the planner's slider replays: those with history and fields to replace.
export function replayTopics() {
  return layers.list.filter((l) => l.history && l.replay.length).map((l) => l.topic);
}

// [topic, REST list path, label key] per layer: what the page loads over REST.
export function sources() {
  return layers.list.map((l) => [l.topic, l.url, l.label]);
}

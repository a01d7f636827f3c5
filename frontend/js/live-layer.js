// One GeoJSON source and its MapLibre layers. Keeps the features it last sent, indexed by id, so
// a delta replaces one feature; `drawn` is what MapLibre has confirmed loading (for the tests).
import { ALL } from "./state.js";

// A redraw waits for MapLibre to load the new data; past this it is counted done anyway (a tab
// in the background, say, where the map does not draw).
const DRAW_TIMEOUT_MS = 2000;

export class LiveLayer {
  constructor(topic, { feature, record, records, hover, layers, isVisible }) {
    this.topic = topic;
    this.sourceId = `mobility-${topic}`;
    this.feature = feature;
    this.record = record;
    this.records = records;
    this.hover = hover;
    this.isVisible = isVisible;
    this.specs = layers.map((spec) => ({ ...spec, id: `${this.sourceId}-${spec.suffix}`, source: this.sourceId }));
    this.layerIds = this.specs.map((spec) => spec.id);
    this.features = [];
    this.index = new Map();
    this.drawn = [];
    this.maplibre = null;
  }

  install(maplibre) {
    this.maplibre = maplibre;
    maplibre.addSource(this.sourceId, { type: "geojson", data: { type: "FeatureCollection", features: [] } });
    for (const { suffix, ...spec } of this.specs) maplibre.addLayer(spec);
    this.setVisible(this.isVisible());
  }

  setVisible(visible) {
    for (const id of this.layerIds) this.maplibre?.setLayoutProperty(id, "visibility", visible ? "visible" : "none");
  }

  rebuild() {
    this.features = [];
    this.index = new Map();
    for (const r of this.records()) {
      const f = this.feature(r);
      if (!f) continue;
      this.index.set(String(r.id), this.features.length);
      this.features.push(f);
    }
  }

  // Replace the features of `ids`; a removal rebuilds (rare: a snapshot, not a delta).
  patch(ids) {
    for (const id of ids) {
      const r = this.record(id);
      const f = r ? this.feature(r) : null;
      const i = this.index.get(id);
      if (i === undefined) {
        if (!f) continue;
        this.index.set(id, this.features.length);
        this.features.push(f);
      } else if (f) {
        this.features[i] = f;
      } else {
        this.rebuild();
        return;
      }
    }
  }

  update(ids) {
    if (ids === ALL || !ids) this.rebuild();
    else this.patch(ids);
    return this.flush();
  }

  // Hand the features to MapLibre; resolves once they are loaded and drawn.
  flush() {
    const sent = this.features.slice();
    const source = this.maplibre.getSource(this.sourceId);
    const drawn = this.isVisible() ? this.whenDrawn() : Promise.resolve();
    source.setData({ type: "FeatureCollection", features: sent });
    return drawn.then(() => {
      this.drawn = sent;
    });
  }

  whenDrawn() {
    const maplibre = this.maplibre;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        maplibre.off("sourcedata", onData);
        resolve();
      };
      const timer = setTimeout(done, DRAW_TIMEOUT_MS);
      const onData = (event) => {
        if (event.sourceId !== this.sourceId || !maplibre.isSourceLoaded(this.sourceId)) return;
        maplibre.off("sourcedata", onData);
        maplibre.once("render", done);
        maplibre.triggerRepaint();
      };
      maplibre.on("sourcedata", onData);
    });
  }
}

// The MapLibre layer of a topic's point features: colour, opacity, ring and its width come from
// each feature's properties (set by the layer module), the radius from `radius`.
export function circleLayer(radius) {
  return {
    suffix: "points",
    type: "circle",
    filter: ["==", ["geometry-type"], "Point"],
    paint: {
      "circle-color": ["get", "color"],
      "circle-opacity": ["get", "opacity"],
      "circle-radius": radius,
      "circle-stroke-color": ["get", "stroke"],
      "circle-stroke-width": ["get", "stroke_width"],
    },
  };
}

// Colour scales. Each layer has its own, so that one colour never means two things, and every
// scale orders by lightness (it reads in greyscale) along the blue-yellow axis that protan and
// deutan vision keep. No value scale holds a grey: grey, with its own shape, means "no value".
//
// The values themselves (occupancy, availability, congestion level, a bike station's fill) come
// from the server; this module only turns them into colours and outlines.

// Parking: viridis from its blue end (Nuñez/van der Walt/Smith): dark blue = full, yellow = free.
const PARKING = [
  [0.0, [59, 28, 140]],
  [0.25, [33, 102, 172]],
  [0.5, [33, 145, 140]],
  [0.75, [94, 201, 98]],
  [1.0, [253, 231, 37]],
];

// Bike stations: dark = empty, light = many bikes, in a reddish-purple hue parking never uses.
const BIKES = [
  [0.0, [61, 19, 86]],
  [0.5, [204, 121, 167]],
  [1.0, [247, 176, 218]],
];

export const NO_VALUE_COLOR = "rgb(255,255,255)"; // hollow: drawn with a grey outline
export const NO_VALUE_OUTLINE = "rgb(100,100,100)";
export const CLOSED_COLOR = "rgb(35,35,35)";
export const STALE_OUTLINE = "rgb(213,94,0)";
export const OUTLINE = "rgba(20,20,30,0.85)";
export const EVENT_COLOR = "rgb(86,180,233)"; // Okabe-Ito sky blue: no other layer uses it
export const ME_COLOR = "rgb(0,114,178)";

function ramp(stops, value) {
  if (value == null || !Number.isFinite(value)) return NO_VALUE_COLOR;
  const v = Math.max(0, Math.min(1, value));
  for (let i = 1; i < stops.length; i += 1) {
    const [stop, color] = stops[i];
    if (v <= stop) {
      const [prevStop, prev] = stops[i - 1];
      const f = (v - prevStop) / (stop - prevStop);
      const c = prev.map((p, k) => Math.round(p + (color[k] - p) * f));
      return `rgb(${c[0]},${c[1]},${c[2]})`;
    }
  }
  const last = stops[stops.length - 1][1];
  return `rgb(${last[0]},${last[1]},${last[2]})`;
}

export function parkingColor(freeShare) {
  return ramp(PARKING, freeShare);
}

export function bikesColor(share) {
  return ramp(BIKES, share);
}

function gradient(stops) {
  return `linear-gradient(to right, ${stops.map(([s]) => `${ramp(stops, s)} ${s * 100}%`).join(", ")})`;
}

export function cssGradient() {
  return gradient(PARKING);
}

export function bikesGradient() {
  return gradient(BIKES);
}

// Traffic levels, best to worst: blue, then yellow to black by falling lightness; the width grows
// with the level too, so a greyscale screen still orders them. "No value" is a thin dashed grey
// line (its own MapLibre layer), never a colour of this scale.
export const TRAFFIC_LEVELS = [
  { key: "free", color: "rgb(0,114,178)", width: 3 },
  { key: "moderate", color: "rgb(240,228,66)", width: 4 },
  { key: "heavy", color: "rgb(213,94,0)", width: 5 },
  { key: "congested", color: "rgb(125,20,20)", width: 6 },
  { key: "closed", color: "rgb(20,20,20)", width: 6 },
];
const LEVEL = Object.fromEntries(TRAFFIC_LEVELS.map((level) => [level.key, level]));

export function trafficColor(level) {
  return LEVEL[level]?.color || NO_VALUE_OUTLINE;
}

export function trafficWidth(level) {
  return LEVEL[level]?.width || 2;
}

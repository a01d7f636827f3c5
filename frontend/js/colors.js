// Colour scales. Each layer has its own, so that one colour never means two things: parking
// uses cividis (blue-grey to yellow), traffic an ordered set of Okabe-Ito hues (bluish green to
// dark red), bike stations a purple ramp. All three stay readable with the common colour-vision
// deficiencies and order by lightness, so they also read in greyscale. Grey means stale or
// unknown, on every layer.

// Cividis (Nuñez et al. 2018). Parking: dark = full, light = free spaces.
const CIVIDIS = [
  [0.0, [0, 34, 78]],
  [0.1, [18, 53, 112]],
  [0.2, [59, 73, 108]],
  [0.3, [87, 93, 109]],
  [0.4, [112, 113, 115]],
  [0.5, [138, 134, 120]],
  [0.6, [165, 156, 116]],
  [0.7, [195, 179, 105]],
  [0.8, [225, 204, 85]],
  [0.9, [254, 232, 56]],
  [1.0, [255, 234, 70]],
];

// Bike stations: dark = empty, light = many bikes (the same "light = available" as parking, in
// a hue parking never uses). Okabe-Ito reddish purple in the middle.
const BIKES = [
  [0.0, [61, 19, 86]],
  [0.5, [204, 121, 167]],
  [1.0, [247, 176, 218]],
];

export const STALE_COLOR = "rgb(150,150,150)";
export const UNKNOWN_COLOR = "rgb(190,190,200)";
export const EVENT_COLOR = "rgb(86,180,233)"; // Okabe-Ito sky blue: no other layer uses it
export const ME_COLOR = "rgb(0,114,178)";

function ramp(stops, value) {
  if (value == null || !Number.isFinite(value)) return UNKNOWN_COLOR;
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

export function cividis(value) {
  return ramp(CIVIDIS, value);
}

export function bikesColor(share) {
  return ramp(BIKES, share);
}

function gradient(stops) {
  return `linear-gradient(to right, ${stops.map(([s]) => `${ramp(stops, s)} ${s * 100}%`).join(", ")})`;
}

export function cssGradient() {
  return gradient(CIVIDIS);
}

export function bikesGradient() {
  return gradient(BIKES);
}

// Traffic levels, best to worst. Lightness falls from `moderate` to `closed`; `free` is told
// apart by hue (the blue-yellow axis that protan and deutan vision keep).
export const TRAFFIC_LEVELS = [
  { key: "free", color: "rgb(0,158,115)" },
  { key: "moderate", color: "rgb(230,159,0)" },
  { key: "heavy", color: "rgb(213,94,0)" },
  { key: "congested", color: "rgb(125,20,20)" },
  { key: "closed", color: "rgb(35,35,35)" },
];
const LEVEL_COLOR = Object.fromEntries(TRAFFIC_LEVELS.map((level) => [level.key, level.color]));

// Speed as a share of free-flow speed, in the bands planners use.
const SPEED_BANDS = [
  { min: 0.8, key: "free" },
  { min: 0.6, key: "moderate" },
  { min: 0.4, key: "heavy" },
  { min: -Infinity, key: "congested" },
];

function number(value) {
  return value == null || value === "" || !Number.isFinite(Number(value)) ? null : Number(value);
}

export function speedRatio(record) {
  // Computed from the two speeds first: a live delta updates `speed_kmh`, not the REST-only
  // `speed_ratio`.
  const speed = number(record.speed_kmh);
  const freeFlow = number(record.free_flow_kmh);
  if (speed != null && freeFlow != null && freeFlow > 0) return speed / freeFlow;
  return number(record.speed_ratio);
}

// Speed against free flow when both are known, else the level the feed reports (many counters,
// Paris's among them, give flow and occupancy with a level but no speed). A closure always wins.
export function trafficLevel(record) {
  if (record.congestion === "closed") return "closed";
  const ratio = speedRatio(record);
  if (ratio != null) return SPEED_BANDS.find((band) => ratio >= band.min).key;
  return LEVEL_COLOR[record.congestion] ? record.congestion : null;
}

export function trafficColor(level) {
  return LEVEL_COLOR[level] || UNKNOWN_COLOR;
}

export function bikesShare(record) {
  const bikes = number(record.bikes_available);
  if (bikes == null) return null;
  const docks = number(record.docks_available);
  const capacity = number(record.capacity) || (docks != null ? bikes + docks : null);
  return capacity ? Math.max(0, Math.min(1, bikes / capacity)) : null;
}

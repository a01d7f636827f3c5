// Cividis (Nuñez et al. 2018): readable with every common colour-vision deficiency and in
// greyscale. One meaning across layers: dark = full or slow, light = free or flowing.
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

export const STALE_COLOR = "rgb(150,150,150)";
export const UNKNOWN_COLOR = "rgb(190,190,200)";
export const EVENT_COLOR = "rgb(213,94,0)"; // Okabe-Ito vermillion: apart from the cividis range
export const BIKE_COLOR = "rgb(204,121,167)"; // Okabe-Ito reddish purple

export function cividis(value) {
  if (value == null || !Number.isFinite(value)) return UNKNOWN_COLOR;
  const v = Math.max(0, Math.min(1, value));
  for (let i = 1; i < CIVIDIS.length; i += 1) {
    const [stop, color] = CIVIDIS[i];
    if (v <= stop) {
      const [prevStop, prev] = CIVIDIS[i - 1];
      const f = (v - prevStop) / (stop - prevStop);
      const c = prev.map((p, k) => Math.round(p + (color[k] - p) * f));
      return `rgb(${c[0]},${c[1]},${c[2]})`;
    }
  }
  return "rgb(255,234,70)";
}

export function cssGradient() {
  return `linear-gradient(to right, ${CIVIDIS.map(([s]) => `${cividis(s)} ${s * 100}%`).join(", ")})`;
}

// Speed relative to free flow, in the classes planners use; segments are drawn one trace per class.
export const SPEED_CLASSES = [
  { key: "congested", max: 0.4, color: cividis(0.0) },
  { key: "heavy", max: 0.6, color: cividis(0.3) },
  { key: "moderate", max: 0.8, color: cividis(0.6) },
  { key: "free", max: Infinity, color: cividis(0.95) },
];

export function speedClass(ratio) {
  if (ratio == null || !Number.isFinite(ratio)) return null;
  return SPEED_CLASSES.find((c) => ratio < c.max) || SPEED_CLASSES[SPEED_CLASSES.length - 1];
}

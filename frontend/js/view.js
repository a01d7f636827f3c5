// The map's view as numbers: the centre and zoom that fit a box, and where a point lands on the
// screen. MapLibre's Web-Mercator with 512-px tiles: the world is 512·2^zoom pixels wide. The
// map (map.js) and the first paint (first-paint.js) both use these, so the first paint's markers
// sit exactly where the map then draws them.

const TILE = 512;
// The map's plain background (its style when there is no base map), which the first paint matches.
export const BACKGROUND = "#dfe4ea";

function mercatorY(lat) {
  const clamped = Math.max(-85.0511, Math.min(85.0511, lat));
  return Math.log(Math.tan(Math.PI / 4 + (clamped * Math.PI) / 360));
}

// The centre and zoom that fit a [min_lon, min_lat, max_lon, max_lat] box in width × height px.
export function fitView(bbox, width, height, maxZoom = 16) {
  const [minLon, minLat, maxLon, maxLat] = bbox;
  const lonSpan = Math.max(1e-4, maxLon - minLon);
  const ySpan = Math.max(1e-5, mercatorY(maxLat) - mercatorY(minLat));
  const zoomX = Math.log2((width / TILE) * (360 / lonSpan));
  const zoomY = Math.log2((height / TILE) * ((2 * Math.PI) / ySpan));
  const zoom = Math.max(1, Math.min(maxZoom, Math.min(zoomX, zoomY) - 0.3));
  return { center: { lon: (minLon + maxLon) / 2, lat: (minLat + maxLat) / 2 }, zoom };
}

// The centre that puts `point` in the middle of the part of the map above a strip `bottom` px
// high hidden at its bottom (the phone's bottom sheet): half that strip further south.
export function aboveBottom(point, zoom, bottom) {
  if (!(bottom > 0)) return point;
  const y = mercatorY(point.lat) - ((bottom / 2) * 2 * Math.PI) / (TILE * 2 ** zoom);
  return { lon: point.lon, lat: ((2 * Math.atan(Math.exp(y)) - Math.PI / 2) * 180) / Math.PI };
}

// The centre and zoom that fit `bbox` in the part of a width × height map above `bottom` px.
export function fitViewAbove(bbox, width, height, bottom, maxZoom = 16) {
  const { center, zoom } = fitView(bbox, width, height - bottom, maxZoom);
  return { center: aboveBottom(center, zoom, bottom), zoom };
}

// World pixel coordinates (at `zoom`) of a point.
function world(lon, lat, zoom) {
  const size = TILE * 2 ** zoom;
  return [((lon + 180) / 360) * size, (0.5 - mercatorY(lat) / (2 * Math.PI)) * size];
}

// A projector for one view: (lon, lat) -> [x, y] in CSS pixels from the map's top-left corner.
export function projector({ center, zoom }, width, height) {
  const [cx, cy] = world(center.lon, center.lat, zoom);
  return (lon, lat) => {
    const [x, y] = world(lon, lat, zoom);
    return [x - cx + width / 2, y - cy + height / 2];
  };
}

// The box holding a city's core: the 2nd to 98th percentile of the positions inside `bbox`, so a
// few suburban stations (Paris's Vélib') do not shrink the city to a blob. Null under 50 points.
export function coreBox(points, bbox) {
  const lats = [];
  const lons = [];
  for (const [lon, lat] of points) {
    if (lat == null || lon == null) continue;
    if (lon < bbox[0] || lon > bbox[2] || lat < bbox[1] || lat > bbox[3]) continue;
    lats.push(Number(lat));
    lons.push(Number(lon));
  }
  if (lats.length < 50) return null; // too few to speak of outliers
  const at = (values, q) => values.sort((a, b) => a - b)[Math.floor(q * (values.length - 1))];
  return [at(lons, 0.02), at(lats, 0.02), at(lons, 0.98), at(lats, 0.98)];
}

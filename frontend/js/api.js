// REST helpers. Errors come back as thrown ApiError with the server's problem+json detail,
// so callers can show a banner instead of failing silently or throwing into the console.
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

export async function getJson(path, params = undefined, { signal, cache, onHeaders } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" }, signal, cache });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "network error");
  }
  if (!response.ok) {
    let detail = `HTTP ${response.status}`;
    try {
      const problem = await response.json();
      detail = problem.detail || problem.title || detail;
    } catch {
      /* not JSON: keep the status line */
    }
    throw new ApiError(response.status, detail);
  }
  onHeaders?.(response.headers);
  return response.json();
}

// Feature collections and plain lists from the API are read the same way: one record per item,
// geometry kept aside (segments and events may be lines).
export function featuresToRecords(collection) {
  const features = Array.isArray(collection) ? collection : collection?.features || collection?.items || [];
  return features.map((feature) => {
    if (!feature.properties) return { ...feature };
    const record = { ...feature.properties };
    const geometry = feature.geometry;
    if (geometry) {
      record.geometry = geometry;
      if (geometry.type === "Point" && record.lat == null) {
        record.lon = geometry.coordinates[0];
        record.lat = geometry.coordinates[1];
      }
    }
    if (record.id == null && feature.id != null) record.id = feature.id;
    return record;
  });
}

const PAGE_SIZE = 1000;

// Every page of a collection, following `next_cursor`. Asks for large pages and falls back to
// the server's default size if this server's `api_max_page_size` is smaller. `changes_seq` is the
// first page's X-Changes-Seq: the change-log seq the collection's state includes (at least).
// `onPage(features)` sees each page as it arrives (the map draws a city page by page).
export async function getAllFeatures(path, params = {}, options = {}) {
  let limit = PAGE_SIZE;
  let cursor = null;
  let seq = null;
  const features = [];
  const onHeaders = (headers) => {
    const value = Number(headers.get("X-Changes-Seq"));
    if (seq === null && headers.has("X-Changes-Seq") && Number.isFinite(value)) seq = value;
  };
  for (;;) {
    let page;
    try {
      page = await getJson(path, { ...params, limit, cursor }, { signal: options.signal, cache: options.cache, onHeaders });
    } catch (error) {
      if (limit !== undefined && (error.status === 400 || error.status === 422)) {
        limit = undefined;
        continue;
      }
      throw error;
    }
    const got = page.features || page.items || [];
    features.push(...got);
    options.onPage?.(got);
    cursor = page.next_cursor;
    if (!cursor) return { ...page, features, next_cursor: null, changes_seq: seq };
  }
}

// The REST queries that fetch one scope of the map: one per feed of the chosen city (a road
// segment known only by its line has no point for a box to match), else its box, else all.
export function scopeQueries(filter) {
  if (filter?.feeds) return filter.feeds.map((feed) => ({ feed }));
  return [filter?.bbox ? { bbox: filter.bbox.join(",") } : {}];
}

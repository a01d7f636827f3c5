// Planner view: congestion and occupancy summary, 24 h charts of one site, replay of the last
// 24 h on the map, and the health of every feed.
import { featuresToRecords, getAllFeatures, getJson, scopeQueries } from "./api.js";
import { addForecast } from "./forecast.js";
import { formatAge, formatTime, t } from "./i18n.js";
import { replayTopics } from "./layers/index.js";
import { requestRender } from "./map.js";
import { records, replay } from "./replay.js";
import { serverNow, state } from "./state.js";

const STEP_MS = 15 * 60 * 1000;
const DAY_MS = 24 * 3600 * 1000;
const CONGESTION_LEVELS = ["free", "moderate", "heavy", "congested", "closed", "unknown"];
const OCCUPANCY_BANDS = [
  { label: "0–50 %", max: 50 },
  { label: "50–80 %", max: 80 },
  { label: "80–95 %", max: 95 },
  { label: "95–100 %", max: Infinity },
];

export const planner = { selected: null, replayTime: null, sliderBase: Date.now(), onError: null, filter: null };

let replayTimer = null;
let replayController = null;

function table(caption, rows) {
  const el = document.createElement("table");
  el.className = "table compact";
  const cap = document.createElement("caption");
  cap.textContent = caption;
  el.append(cap);
  const body = document.createElement("tbody");
  for (const [label, count] of rows) {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = label;
    const td = document.createElement("td");
    td.textContent = String(count);
    tr.append(th, td);
    body.append(tr);
  }
  el.append(body);
  return el;
}

export function renderSummary() {
  const traffic = Object.fromEntries(CONGESTION_LEVELS.map((level) => [level, 0]));
  // The map's own levels (the server's `level`, stale drawn as no value), for the sites the map
  // holds: the chosen city's.
  for (const r of records("traffic")) {
    const level = !r.stale && CONGESTION_LEVELS.includes(r.level) ? r.level : "unknown";
    traffic[level] += 1;
  }
  const bands = OCCUPANCY_BANDS.map(() => 0);
  let unknown = 0;
  let closed = 0;
  for (const r of records("parking")) {
    const pct = r.occupancy_pct;
    if (r.availability === "closed") {
      closed += 1;
      continue;
    }
    if (pct == null || r.stale) {
      unknown += 1;
      continue;
    }
    bands[OCCUPANCY_BANDS.findIndex((b) => pct < b.max)] += 1;
  }
  document
    .getElementById("summary")
    .replaceChildren(
      table(t("summary_traffic"), CONGESTION_LEVELS.map((level) => [t(`congestion_${level}`), traffic[level]])),
      table(t("summary_parking"), [
        ...OCCUPANCY_BANDS.map((b, i) => [b.label, bands[i]]),
        [t("availability_closed"), closed],
        [t("band_unknown"), unknown],
      ]),
    );
}

const HEALTH_FIELDS = ["last_success_at", "last_error", "consecutive_failures"];

function pick(object, keys) {
  return Object.fromEntries(keys.filter((k) => object[k] !== undefined).map((k) => [k, object[k]]));
}

// A feed's name for people: its city and what it carries ("Rennes · parking"), the id kept for
// operators in the row's title.
function feedName(feed) {
  const kinds = Object.entries(feed.sites || {})
    .filter(([, n]) => n > 0)
    .map(([kind]) => t(`layer_${kind}`).toLowerCase());
  const what = kinds.length ? kinds.join(", ") : feed.format || "";
  return [feed.city, what].filter(Boolean).join(" · ") || String(feed.id);
}

// The quality counters the API keeps per feed: records and rejections of the last poll, and the
// rules that flagged records, most frequent first.
function feedQuality(health) {
  if (health.last_records == null && !health.records_total) return "–";
  const parts = [
    t("feed_quality", {
      records: health.last_records ?? 0,
      rejected: health.last_rejected ?? 0,
      total: health.records_total ?? 0,
      rejected_total: health.rejected_total ?? 0,
    }),
  ];
  const rules = Object.entries(health.quality || {})
    .filter(([, n]) => Number(n) > 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([rule, n]) => `${rule.replaceAll("_", " ")}: ${n}`);
  if (rules.length) parts.push(rules.join(", "));
  return parts.join(" · ");
}

export function renderFeeds() {
  const body = document.querySelector("#feed-table tbody");
  const feeds = [...state.records.feeds.values()].sort((a, b) => feedName(a).localeCompare(feedName(b)));
  body.replaceChildren(
    ...feeds.map((feed) => {
      const tr = document.createElement("tr");
      // A feed that answers but gives nothing usable (docs/ingest.md) is not "ok" either.
      const unhealthy = !feed.stale && feed.healthy === false && feed.unhealthy_reason;
      tr.className = feed.stale ? "is-stale" : unhealthy ? "is-unhealthy" : "";
      tr.title = String(feed.id);
      tr.dataset.id = feed.id;
      // REST nests health; live `feeds` deltas carry the same fields flat.
      const health = { ...(feed.health || {}), ...pick(feed, HEALTH_FIELDS) };
      const lastSuccess = health.last_success_at ? Date.parse(health.last_success_at) : null;
      const cells = [
        feedName(feed),
        feed.stale
          ? `${t("feed_stale")}${health.last_error ? ` (${health.last_error})` : ""}`
          : unhealthy
            ? `${t("feed_unhealthy")} (${feed.unhealthy_reason})`
            : t("feed_ok"),
        lastSuccess ? t("updated_ago", { age: formatAge((serverNow() - lastSuccess) / 1000) }) : t("never"),
        health.consecutive_failures ?? 0,
        feedQuality(health),
      ];
      tr.replaceChildren(
        ...cells.map((value) => {
          const td = document.createElement("td");
          td.textContent = String(value);
          return td;
        }),
      );
      return tr;
    }),
  );
}

export async function loadFeeds() {
  try {
    // Revalidated (ETag, so usually a 304): a copy from the HTTP cache could be older than the
    // live `feeds` delta that asked for this refetch, and would undo it.
    const feeds = await getJson("/api/v1/feeds", undefined, { cache: "no-cache" });
    const list = Array.isArray(feeds) ? feeds : feeds.items || feeds.feeds || [];
    for (const feed of list) {
      const id = String(feed.id ?? feed.name);
      // Flat copies of the health fields too: the live feed sends them flat, and whichever
      // arrived last must win.
      state.records.feeds.set(id, { ...(state.records.feeds.get(id) || {}), ...feed, ...pick(feed.health || {}, HEALTH_FIELDS), id });
    }
    renderFeeds();
  } catch (error) {
    planner.onError?.(t("error_load", { what: t("feeds_title"), detail: error.detail || error.message }));
  }
}

// History buckets: accept {t|time|bucket|start, <field>: {avg,min,max,last} | number}. Where
// readings stop for much longer than the feed's usual spacing (a feed silent overnight, an
// outage) the line has a gap, instead of a straight line across hours nothing was read.
function bucketSeries(buckets, field) {
  const rows = [];
  for (const b of buckets) {
    const time = b.t ?? b.time ?? b.bucket ?? b.start ?? b.observed_at;
    if (time == null) continue;
    const value = b[field];
    const at = new Date(time);
    if (value != null && typeof value === "object") {
      rows.push([at, value.avg ?? value.last ?? null, value.min ?? null, value.max ?? null]);
    } else {
      rows.push([at, value ?? b[`${field}_avg`] ?? null, b[`${field}_min`] ?? null, b[`${field}_max`] ?? null]);
    }
  }
  const gaps = rows.slice(1).map(([at], i) => at - rows[i][0]).sort((a, b) => a - b);
  const usual = gaps.length ? gaps[Math.floor(gaps.length / 2)] : STEP_MS;
  const silence = Math.max(2 * STEP_MS, 3 * usual);
  const out = { x: [], avg: [], min: [], max: [] };
  rows.forEach(([at, avg, min, max], i) => {
    if (i > 0 && at - rows[i - 1][0] > silence) {
      out.x.push(new Date(rows[i - 1][0].getTime() + STEP_MS));
      out.avg.push(null);
      out.min.push(null);
      out.max.push(null);
    }
    out.x.push(at);
    out.avg.push(avg);
    out.min.push(min);
    out.max.push(max);
  });
  return out;
}

// The min–max band of a series, one closed shape per run of buckets between gaps: a fill between
// two traces would be drawn across the gaps the line leaves open.
function bandTraces({ x, min, max }) {
  const traces = [];
  let run = [];
  const flush = () => {
    if (run.length) {
      traces.push({
        x: [...run.map((i) => x[i]), ...run.map((i) => x[i]).reverse()],
        y: [...run.map((i) => max[i]), ...run.map((i) => min[i]).reverse()],
        type: "scatter",
        mode: "lines",
        fill: "toself",
        fillcolor: "rgba(59,73,108,0.2)",
        line: { width: 0 },
        hoverinfo: "skip",
        showlegend: false,
      });
    }
    run = [];
  };
  x.forEach((_, i) => {
    if (min[i] == null || max[i] == null) flush();
    else run.push(i);
  });
  flush();
  return traces;
}

export async function showSite(topic, id) {
  planner.selected = { topic, id };
  const chart = document.getElementById("site-chart");
  const hint = document.getElementById("chart-hint");
  const record = state.records[topic].get(String(id));
  hint.textContent = record?.name || id;
  const to = new Date();
  const from = new Date(to.getTime() - DAY_MS);
  let payload;
  try {
    payload = await getJson(`/api/v1/${topic}/sites/${encodeURIComponent(id)}/history`, {
      from: from.toISOString(),
      to: to.toISOString(),
      step: "15m",
    });
  } catch (error) {
    hint.textContent = `${record?.name || id}: ${t("chart_failed")}`;
    Plotly.purge(chart);
    return;
  }
  const buckets = Array.isArray(payload) ? payload : payload.points || payload.buckets || [];
  let data;
  // Sized to its box (which may have been hidden when the page was laid out), with a time axis
  // in hours and minutes.
  let layout = {
    margin: { l: 48, r: 48, t: 10, b: 36 },
    height: 240,
    width: chart.clientWidth || undefined,
    autosize: true,
    showlegend: true,
    legend: { orientation: "h", y: -0.25 },
    // The whole day asked for, so a site with a few readings is not drawn on a one-minute axis.
    xaxis: { type: "date", tickformat: "%H:%M", hoverformat: "%H:%M", range: [from, to] },
  };
  if (topic === "parking") {
    // The server's occupancy per bucket (the history carries it, by the rule REST and live use).
    const occ = bucketSeries(buckets, "occupancy_pct");
    data = [
      ...bandTraces(occ),
      {
        x: occ.x,
        y: occ.avg,
        type: "scatter",
        mode: "lines+markers", // one point still draws
        marker: { size: 4 },
        name: t("chart_occupancy"),
        line: { color: "rgb(59,28,140)" },
      },
    ];
    layout.yaxis = { title: { text: t("chart_occupancy") }, range: [0, 100] };
  } else {
    const speed = bucketSeries(buckets, "speed_kmh");
    const flow = bucketSeries(buckets, "flow_vph");
    data = [
      { x: speed.x, y: speed.avg, type: "scatter", mode: "lines+markers", marker: { size: 4 }, name: t("chart_speed"), line: { color: "rgb(0,114,178)" } },
      {
        x: flow.x,
        y: flow.avg,
        type: "scatter",
        mode: "lines",
        name: t("chart_flow"),
        yaxis: "y2",
        line: { color: "rgb(213,94,0)" },
      },
    ].filter((series) => series.y.some((v) => v != null)); // no empty series in the legend
    layout = {
      ...layout,
      yaxis: { title: { text: t("chart_speed") } },
      yaxis2: { title: { text: t("chart_flow") }, overlaying: "y", side: "right" },
    };
  }
  await Plotly.react(chart, data, layout, { displaylogo: false, responsive: true });
  if (topic !== "parking") return;
  await addForecast(chart, id, () => planner.selected?.id === id);
  // The forecast lies ahead of now: the time axis reaches its last point, or it would not show.
  const ahead = (chart.data || []).filter((trace) => trace.line?.dash === "dash").flatMap((trace) => trace.x);
  const end = Math.max(to.getTime(), ...ahead.map((x) => new Date(x).getTime()));
  if (end > to.getTime() && planner.selected?.id === id) await Plotly.relayout(chart, { "xaxis.range": [from, new Date(end)] });
}

// The chart may have been drawn while the planner was hidden (chosen from the list): fit it to
// its box once shown.
export function fitChart() {
  const chart = document.getElementById("site-chart");
  if (chart.data && chart.clientWidth) Plotly.relayout(chart, { width: chart.clientWidth });
}

export function sliderTime(value) {
  return new Date(planner.sliderBase + Number(value) * STEP_MS);
}

export function updateSliderLabel() {
  const slider = document.getElementById("time-slider");
  const label = document.getElementById("time-label");
  const value = Number(slider.value);
  label.textContent = value === 0 ? t("replay_live") : formatTime(sliderTime(value));
  slider.setAttribute("aria-valuetext", label.textContent);
}

export function onSliderInput() {
  updateSliderLabel();
  clearTimeout(replayTimer);
  // Dragging or holding an arrow key fires many events: fetch only once it rests.
  replayTimer = setTimeout(applySlider, 250);
}

// Every layer's state at `time`, for the chosen city only (by feed, as the live view).
async function fetchPast(topic, time, signal) {
  const filter = planner.filter?.() || null;
  const queries = scopeQueries(filter);
  const pages = await Promise.all(
    queries.map((params) => getAllFeatures(`/api/v1/${topic}/at`, { ...params, time: time.toISOString() }, { signal })),
  );
  return new Map(pages.flatMap((page) => featuresToRecords(page)).map((r) => [String(r.id), r]));
}

function replayChanged() {
  for (const topic of replayTopics()) state.dirty.add(topic);
  requestRender();
  renderSummary();
}

async function applySlider() {
  const value = Number(document.getElementById("time-slider").value);
  const banner = document.getElementById("replay-banner");
  replayController?.abort();
  if (value === 0) {
    planner.replayTime = null;
    replay.topics = null;
    replay.time = null;
    banner.hidden = true;
    replayChanged();
    return;
  }
  const time = sliderTime(value);
  replayController = new AbortController();
  planner.replayTime = time;
  try {
    const topics = replayTopics();
    const past = await Promise.all(topics.map((topic) => fetchPast(topic, time, replayController.signal)));
    if (past.some((sites) => sites.size)) {
      replay.topics = Object.fromEntries(topics.map((topic, i) => [topic, past[i]]));
      replay.time = time;
      banner.textContent = t("replay_banner", { time: formatTime(time) });
    } else {
      // Nothing recorded that far back: say so, and keep the live map rather than empty markers.
      replay.topics = null;
      replay.time = null;
      banner.textContent = t("replay_no_history", { time: formatTime(time) });
    }
  } catch (error) {
    if (error.name === "AbortError") return;
    replay.topics = null;
    replay.time = null;
    banner.textContent = t("replay_failed", { time: formatTime(time) });
  }
  banner.hidden = false;
  replayChanged();
}

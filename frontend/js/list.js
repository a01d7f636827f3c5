// The list view: the parking sites the map currently shows (city and text filter), as a table
// a screen reader or keyboard can use, and the same rows as a CSV download.
import { formatAge, t } from "./i18n.js";
import { parkingRecords } from "./map.js";
import { parkingSummary } from "./format.js";
import { ageSeconds } from "./state.js";

const MAX_ROWS = 300; // a table of 5,000 rows helps nobody; the CSV has them all
const CSV_COLUMNS = [
  "id", "feed", "name", "lat", "lon", "capacity", "free", "occupied", "occupancy_pct",
  "status", "availability", "trend", "stale", "stale_reason", "observed_at",
];

export const list = { bbox: null, feeds: null, filter: "", onChoose: null };

function inBox(r, bbox) {
  if (!bbox) return true;
  const [minLon, minLat, maxLon, maxLat] = bbox;
  return r.lon >= minLon && r.lon <= maxLon && r.lat >= minLat && r.lat <= maxLat;
}

export function shownRows() {
  const needle = list.filter.trim().toLowerCase();
  return parkingRecords()
    .filter((r) => (list.feeds ? list.feeds.has(r.feed) : inBox(r, list.bbox)))
    .filter((r) => !needle || `${r.name || ""} ${r.address || ""} ${r.id}`.toLowerCase().includes(needle))
    .sort((a, b) => String(a.name || a.id).localeCompare(String(b.name || b.id)));
}

export function render() {
  const rows = shownRows();
  const body = document.querySelector("#site-table tbody");
  body.replaceChildren(
    ...rows.slice(0, MAX_ROWS).map((r) => {
      const tr = document.createElement("tr");
      tr.className = [r.stale ? "is-stale" : "", `availability-${r.availability || "no_data"}`].join(" ").trim();
      const nameCell = document.createElement("td");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "link-button";
      button.textContent = r.name || r.id;
      button.addEventListener("click", () => list.onChoose?.(r));
      nameCell.append(button);
      const cells = [
        parkingSummary(r),
        r.capacity ?? "–",
        r.trend ? t(`trend_${r.trend}`) : "–",
        (r.stale ? `${t("stale")} · ` : "") + formatAge(ageSeconds(r)),
      ].map((value) => {
        const td = document.createElement("td");
        td.textContent = String(value);
        return td;
      });
      tr.append(nameCell, ...cells);
      return tr;
    }),
  );
  document.getElementById("list-count").textContent = t("list_count", {
    shown: Math.min(rows.length, MAX_ROWS),
    total: rows.length,
  });
}

function csvCell(value) {
  if (value == null) return "";
  const text = String(value);
  // Quote when needed; a leading =,+,-,@ is prefixed so a spreadsheet never runs it as a formula.
  const safe = /^[=+\-@]/.test(text) && !/^-?\d/.test(text) ? `'${text}` : text;
  return /[",\n\r]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

export function toCsv(rows) {
  const lines = [CSV_COLUMNS.join(",")];
  for (const r of rows) {
    lines.push(CSV_COLUMNS.map((c) => csvCell(r[c])).join(","));
  }
  return lines.join("\r\n") + "\r\n";
}

export function downloadCsv() {
  const blob = new Blob([toCsv(shownRows())], { type: "text/csv;charset=utf-8" });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = `parking-${new Date().toISOString().slice(0, 16).replace(":", "")}.csv`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

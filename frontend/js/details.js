// The details card of a chosen car park: what a commuter needs to decide and go, all from the
// server's values (availability, occupancy, trend, freshness), and a link that opens directions
// in the user's own map app.
import { formatAge, t } from "./i18n.js";
import { fmt, staleText } from "./format.js";
import { reveal } from "./sheet.js";
import { ageSeconds, state } from "./state.js";

let chosen = null; // site id

function row(label, value) {
  const dt = document.createElement("dt");
  dt.textContent = label;
  const dd = document.createElement("dd");
  dd.textContent = value;
  return [dt, dd];
}

// With a record: show it; without: refresh the one shown (live values, ticking age).
export function showDetails(record) {
  if (record) chosen = String(record.id);
  const card = document.getElementById("site-card");
  draw(card);
  // Chosen now (not a refresh): on a phone the sheet rises to show it.
  if (record && !card.hidden) reveal(card, state.records.parking.get(chosen));
}

function draw(card) {
  const r = chosen ? state.records.parking.get(chosen) : null;
  if (!r) {
    card.hidden = true;
    return;
  }
  const availability = r.availability || "no_data";
  // A closed or count-less car park has no free count or occupancy to act on.
  const counted = availability === "open" || availability === "full";
  const rows = [
    [t("card_status"), t(`availability_${availability}`)],
    [t("card_free"), counted ? t("free_of", { free: fmt(r.free), capacity: fmt(r.capacity) }) : "–"],
    [t("card_occupancy"), counted && r.occupancy_pct != null ? t("pct_full", { pct: fmt(r.occupancy_pct) }) : "–"],
    [t("card_trend"), t(`trend_${r.trend || "unknown"}`)],
    [t("card_updated"), t("updated_ago", { age: formatAge(ageSeconds(r)) }) + (r.stale ? ` · ${staleText(r)}` : "")],
    [t("card_address"), r.address || "–"],
  ];
  card.className = `site-card availability-${availability}${r.stale ? " is-stale" : ""}`;
  const shown = card.querySelectorAll("dd");
  if (!card.hidden && card.dataset.id === String(r.id) && shown.length === rows.length) {
    // The same site: values change in place, so a focused link or button keeps its focus.
    rows.forEach(([, value], i) => {
      if (shown[i].textContent !== value) shown[i].textContent = value;
    });
    return;
  }
  const title = document.createElement("h2");
  title.textContent = r.name || r.id;
  const list = document.createElement("dl");
  list.append(...rows.flatMap(([label, value]) => row(label, value)));
  const actions = document.createElement("p");
  if (r.lat != null && r.lon != null) {
    const link = document.createElement("a");
    link.className = "button-link";
    link.href = `https://www.google.com/maps/dir/?api=1&destination=${Number(r.lat)},${Number(r.lon)}`;
    link.target = "_blank";
    link.rel = "noopener";
    link.textContent = t("card_directions");
    actions.append(link);
  }
  const close = document.createElement("button");
  close.type = "button";
  close.textContent = t("card_close");
  close.addEventListener("click", () => {
    chosen = null;
    card.hidden = true;
  });
  actions.append(close);
  card.dataset.id = r.id;
  card.replaceChildren(title, list, actions);
  card.hidden = false;
}

// Labels change with the language: rebuild the card rather than update its values.
export function redrawDetails() {
  document.getElementById("site-card").dataset.id = "";
  showDetails();
}

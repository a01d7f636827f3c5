// Phones (below 900 px): the map fills the screen and the panel (near me, list, planner) is a
// bottom sheet over it, as consumer map apps do. Three heights: `peek` (the tabs and the near-me
// control, above the fold), `half` and `full`. The handle is a real button: a tap or Enter
// steps up (and from full back to peek), arrow keys step, a drag moves the sheet and it snaps to
// the nearest height. The map knows how much of it the sheet covers (`map.covered`), so framing
// the near-me answers or a city puts them in the part still visible above the sheet.
// On wider screens none of this applies: the panel sits beside the map as before.
import { t, onLanguageChange } from "./i18n.js";
import { centerOn, map, subplotMap } from "./map.js";

const PHONE = window.matchMedia("(max-width: 899px)");
const STATES = ["peek", "half", "full"];
const DRAG_SLOP_PX = 6; // a pointer that moves less than this is a tap, not a drag

export const sheet = { state: "peek", dragging: false };

let panel = null;
let handle = null;

export function isPhone() {
  return PHONE.matches;
}

function layoutHeight() {
  return panel.parentElement.clientHeight;
}

// The sheet's height in each state, in px, from what it must show: at peek, the tabs and the
// first lines of the shown view (the near-me button and its status line); at full, all but a
// strip of map to tap back to.
function heights() {
  const total = layoutHeight();
  const shown = panel.querySelector('[role="tabpanel"]:not([hidden])');
  const top = panel.getBoundingClientRect().top;
  const anchor = shown?.id === "view-near" ? document.getElementById("near-status") : shown?.querySelector(".row, h2, label");
  // Where the anchor sits with its view scrolled to the top.
  const anchorBottom = anchor ? anchor.getBoundingClientRect().bottom - top + shown.scrollTop : 0;
  const tabsBottom = panel.querySelector(".tabs").getBoundingClientRect().bottom - top;
  const peek = Math.min(total * 0.45, Math.max(tabsBottom + 56, anchorBottom + 10));
  const full = Math.max(peek, total - 56);
  const half = Math.min(full, Math.max(peek + 120, total * 0.5));
  return { peek: Math.round(peek), half: Math.round(half), full: Math.round(full) };
}

// How many px at the bottom of the map the sheet hides (0 beside the map, on wide screens).
function covered() {
  if (!panel || !isPhone()) return 0;
  return heights()[sheet.state];
}

function label() {
  handle.setAttribute("aria-label", t(`sheet_handle_${sheet.state}`));
  handle.setAttribute("aria-expanded", String(sheet.state !== "peek"));
}

function apply({ animate = true } = {}) {
  if (!isPhone()) {
    panel.style.removeProperty("height");
    panel.dataset.sheet = "";
    return;
  }
  panel.classList.toggle("sheet-animate", animate);
  panel.style.height = `${heights()[sheet.state]}px`;
  panel.dataset.sheet = sheet.state;
  // At peek only the top of the sheet shows: its content starts from the top again.
  if (sheet.state === "peek") for (const view of panel.querySelectorAll('[role="tabpanel"]')) view.scrollTop = 0;
  label();
}

export function setState(state, options) {
  if (!STATES.includes(state)) return;
  sheet.state = state;
  if (panel) apply(options);
}

// At least `state` high (results arrived, a site was chosen): never lowers the sheet.
export function expand(state = "half") {
  if (STATES.indexOf(sheet.state) < STATES.indexOf(state)) setState(state);
}

// Brings an element of the sheet into view: its tab shown, the sheet at least half high, the
// element scrolled to; and the site it is about (`point`, {lat, lon}) kept on the map above the
// sheet, not under it. On wide screens the panel is always in view: nothing to do.
export function reveal(el, point = null) {
  if (!panel || !isPhone() || !el) return;
  const view = el.closest('[role="tabpanel"]');
  if (view?.hidden) document.querySelector(`[role="tab"][aria-controls="${view.id}"]`)?.click();
  expand("half");
  el.scrollIntoView({ block: "start" });
  if (point?.lat != null && point?.lon != null) keepAboveSheet(point);
}

function keepAboveSheet({ lat, lon }) {
  const maplibre = subplotMap();
  if (!maplibre) return;
  const at = maplibre.project([Number(lon), Number(lat)]);
  const visible = maplibre.getCanvas().clientHeight - covered();
  if (at.y > 24 && at.y < visible - 24) return; // already in view
  centerOn(Number(lat), Number(lon), maplibre.getZoom());
}

function step(delta) {
  const i = Math.max(0, Math.min(STATES.length - 1, STATES.indexOf(sheet.state) + delta));
  setState(STATES[i]);
}

function nearest(height) {
  const h = heights();
  return STATES.reduce((best, s) => (Math.abs(h[s] - height) < Math.abs(h[best] - height) ? s : best), "peek");
}

function setupDrag() {
  let start = null; // {y, height, moved}
  handle.addEventListener("pointerdown", (event) => {
    if (!isPhone() || event.button !== 0) return;
    start = { y: event.clientY, height: panel.getBoundingClientRect().height, moved: false };
    handle.setPointerCapture(event.pointerId);
  });
  handle.addEventListener("pointermove", (event) => {
    if (!start) return;
    const dy = event.clientY - start.y;
    if (!start.moved && Math.abs(dy) < DRAG_SLOP_PX) return;
    start.moved = true;
    sheet.dragging = true;
    const h = heights();
    panel.classList.remove("sheet-animate");
    panel.style.height = `${Math.round(Math.max(h.peek, Math.min(h.full, start.height - dy)))}px`;
  });
  const end = () => {
    if (!start) return;
    const moved = start.moved;
    start = null;
    if (!moved) return; // a tap: the click handler steps
    setState(nearest(panel.getBoundingClientRect().height));
    // The click that follows a drag's pointerup is not a tap.
    setTimeout(() => {
      sheet.dragging = false;
    });
  };
  handle.addEventListener("pointerup", end);
  handle.addEventListener("pointercancel", end);
}

function install() {
  panel = document.getElementById("panel");
  handle = document.createElement("button");
  handle.type = "button";
  handle.id = "sheet-handle";
  handle.className = "sheet-handle";
  handle.setAttribute("aria-controls", "panel");
  handle.innerHTML = '<span class="grip" aria-hidden="true"></span>';
  panel.prepend(handle);
  handle.addEventListener("click", () => {
    if (sheet.dragging) return;
    setState(sheet.state === "full" ? "peek" : STATES[STATES.indexOf(sheet.state) + 1]);
  });
  handle.addEventListener("keydown", (event) => {
    const delta = { ArrowUp: 1, ArrowDown: -1 }[event.key];
    const to = { Home: "full", End: "peek" }[event.key];
    if (delta === undefined && !to) return;
    event.preventDefault();
    if (to) setState(to);
    else step(delta);
  });
  setupDrag();
  // Another tab shows other content: at least half the screen for it.
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    tab.addEventListener("click", () => {
      if (isPhone()) {
        expand("half");
        apply();
      }
    });
  }
  setupMapOptions();
  PHONE.addEventListener("change", () => apply({ animate: false }));
  window.addEventListener("resize", () => apply({ animate: false }));
  onLanguageChange(() => {
    label();
    optionsLabel();
  });
  map.covered = covered;
  label();
  apply({ animate: false });
}

// ---------------------------------------------------------------- layers and legend on phones

// On a phone the layer switches and the legend are a card over the map, opened by one button
// (as the layers button of a map app), instead of taking a third of the screen. Same elements
// as on wide screens (style.css places them): nothing moves in the page.
let optionsButton = null;

function optionsLabel() {
  if (optionsButton) optionsButton.textContent = t("map_options");
}

function setupMapOptions() {
  const area = document.querySelector(".map-area");
  optionsButton = document.createElement("button");
  optionsButton.type = "button";
  optionsButton.id = "map-options";
  optionsButton.className = "map-options-toggle";
  optionsButton.setAttribute("aria-expanded", "false");
  optionsButton.setAttribute("aria-controls", "map-layers");
  area.querySelector(".layers").id ||= "map-layers";
  area.prepend(optionsButton);
  optionsLabel();
  optionsButton.addEventListener("click", () => {
    const open = optionsButton.getAttribute("aria-expanded") !== "true";
    optionsButton.setAttribute("aria-expanded", String(open));
    area.classList.toggle("options-open", open);
  });
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", install);
else install();

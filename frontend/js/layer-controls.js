// The page's parts that list the layers: a toggle and a legend row per registered layer that
// index.html does not already hold (its own rows are there for the first paint), and the
// status line's counts. Built from the layer registry (layers/index.js), so a layer module is
// all a new topic's frontend needs.
import { t, translatePage } from "./i18n.js";
import { layers } from "./layers/index.js";
import { state } from "./state.js";

function toggle(l) {
  const label = document.createElement("label");
  const box = document.createElement("input");
  box.type = "checkbox";
  box.id = `layer-${l.topic}`;
  box.checked = true;
  const text = document.createElement("span");
  text.dataset.i18n = l.label;
  label.append(box, " ", text);
  return label;
}

function legendRow(l) {
  const row = document.createElement("div");
  row.className = "legend-row";
  row.dataset.layer = l.topic;
  const title = document.createElement("span");
  title.className = "legend-title";
  title.dataset.i18n = l.label;
  row.append(title);
  for (const { color, outline, label } of l.legend) {
    const item = document.createElement("span");
    item.className = "item";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = color;
    swatch.style.border = `2px solid ${outline || color}`;
    const text = document.createElement("span");
    text.dataset.i18n = label;
    item.append(swatch, text);
    row.append(item);
  }
  return row;
}

export function addLayerControls() {
  const fieldset = document.querySelector("fieldset.layers");
  const legend = document.querySelector(".legend");
  for (const l of layers.list) {
    if (fieldset && !document.getElementById(`layer-${l.topic}`)) fieldset.append(toggle(l));
    if (legend && l.legend?.length && !legend.querySelector(`[data-layer="${l.topic}"]`)) {
      const rows = legend.querySelectorAll(".legend-row[data-layer]");
      const after = rows[rows.length - 1];
      if (after) after.after(legendRow(l));
      else legend.prepend(legendRow(l));
    }
  }
  translatePage();
}

// "12 parking · 40 traffic · …": the language's sentence for the layers it names
// (`sites_status`), then "N <layer label>" for every other layer.
export function statusText() {
  const counts = Object.fromEntries(layers.list.map((l) => [l.topic, state.records[l.topic]?.size ?? 0]));
  const template = t("sites_status");
  const others = layers.list.filter((l) => !template.includes(`{${l.topic}}`));
  return [t("sites_status", counts), ...others.map((l) => `${counts[l.topic]} ${t(l.label)}`)].join(" · ");
}

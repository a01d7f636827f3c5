// Translations: English is always loaded as the fallback, so a partial language file
// (Finnish, a new contribution) shows English for what it lacks instead of raw keys.
const STORAGE_KEY = "mobility.lang";
export const LANGUAGES = ["en", "fr", "fi"];

let fallback = {};
let strings = {};
// Strings a layer module brings (layers/index.js), lang -> key -> text: after the language files.
const added = {};
let current = "en";
const listeners = [];

async function loadStrings(lang) {
  const response = await fetch(`/static/i18n/${lang}.json`);
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

function storedLanguage() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // storage disabled (private mode): just do not remember
  }
}

export function initialLanguage() {
  const stored = storedLanguage();
  if (LANGUAGES.includes(stored)) return stored;
  const browser = (navigator.language || "en").slice(0, 2).toLowerCase();
  return LANGUAGES.includes(browser) ? browser : "en";
}

export function t(key, params = {}) {
  let text = strings[key] ?? added[current]?.[key] ?? fallback[key] ?? added.en?.[key] ?? key;
  for (const [name, value] of Object.entries(params)) {
    text = text.replaceAll(`{${name}}`, String(value));
  }
  return text;
}

export function addStrings(tables) {
  for (const [lang, table] of Object.entries(tables || {})) added[lang] = { ...added[lang], ...table };
  translatePage();
}

export function language() {
  return current;
}

export function onLanguageChange(fn) {
  listeners.push(fn);
}

export function translatePage(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-aria]")) el.setAttribute("aria-label", t(el.dataset.i18nAria));
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
}

export async function setLanguage(lang) {
  if (!LANGUAGES.includes(lang)) lang = "en";
  if (!Object.keys(fallback).length) fallback = await loadStrings("en");
  strings = lang === "en" ? fallback : await loadStrings(lang).catch(() => ({}));
  current = lang;
  document.documentElement.lang = lang;
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    /* not remembered, still applied */
  }
  translatePage();
  for (const fn of listeners) fn(lang);
}

export function formatAge(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return t("never");
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

export function formatDistance(metres) {
  if (metres == null) return "";
  return metres < 1000 ? `${Math.round(metres)} m` : `${(metres / 1000).toFixed(1)} km`;
}

export function formatTime(date) {
  return new Intl.DateTimeFormat(current, { dateStyle: "short", timeStyle: "short" }).format(date);
}

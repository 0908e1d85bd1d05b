// The console's two languages. Every text shown goes through t("English text", {name: value}):
// English is the key and the English text; the German comes from the catalogue in i18n-de.js.
// A key the catalogue lacks is shown in English and recorded in window.omshubMissing, which the
// browser tests check (docs/console.md, "Languages").
import { DE, VALUE_DE } from "./i18n-de.js";

const STORE = "omshub.lang";
export const LANGUAGES = ["de", "en"];
let current = initial();
window.omshubMissing = new Set();

function initial() {
  try {
    const stored = localStorage.getItem(STORE);
    if (LANGUAGES.includes(stored)) return stored;
  } catch { /* storage may be off: follow the browser */ }
  const browser = (navigator.language || "de").slice(0, 2).toLowerCase();
  return browser === "en" ? "en" : "de"; // German heat suppliers: German unless the browser says English
}

export function lang() {
  return current;
}

// BCP 47 tag for Intl: German as in Germany, English as in Britain (24-hour clock, day first)
export function locale() {
  return current === "de" ? "de-DE" : "en-GB";
}

export function setLang(value) {
  if (!LANGUAGES.includes(value)) return;
  current = value;
  document.documentElement.lang = value;
  try {
    localStorage.setItem(STORE, value);
  } catch { /* not kept: the server keeps the user's choice too */ }
}

function fill(text, params) {
  return text.replace(/\{(\w+)\}/g, (m, k) => (params && k in params ? String(params[k]) : m));
}

export function t(english, params) {
  if (current === "en") return fill(english, params);
  const german = DE[english];
  if (german === undefined) {
    window.omshubMissing.add(english);
    return fill(english, params);
  }
  return fill(german, params);
}

// One of "n thing(s)": n with the singular or the plural text, both given in English.
export function tn(n, one, many, params = {}) {
  return t(n === 1 ? one : many, { n: fmtNum(n), ...params });
}

// A value the API gives as a code (a state, a device type, a quantity, a field name): its words.
// `quiet`: a value that may as well be a name (a username, a serial) is shown as it is.
export function tv(code, quiet = false) {
  if (code === null || code === undefined || code === "") return "—";
  const key = String(code);
  const pair = VALUE_DE[key];
  if (pair === undefined) {
    if (quiet) return key;
    if (current === "de") window.omshubMissing.add("value:" + key);
    return key.replaceAll("_", " ");
  }
  return current === "de" ? pair[0] : pair[1];
}

export function fmtNum(v, digits = 3) {
  if (v === null || v === undefined || v === "") return "—";
  if (typeof v !== "number") return String(v);
  return v.toLocaleString(locale(), { maximumFractionDigits: digits });
}

// One date format everywhere: 07.12.2026, 14:05:09 (de) / 07/12/2026, 14:05:09 (en)
export function fmtTime(iso, withSeconds = false) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "—";
  return d.toLocaleString(locale(), { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
                                      minute: "2-digit", second: withSeconds ? "2-digit" : undefined });
}

export function fmtDate(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "—";
  return d.toLocaleDateString(locale(), { year: "numeric", month: "2-digit", day: "2-digit" });
}

export function relTime(iso) {
  if (!iso) return t("never");
  const s = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
  const a = Math.abs(s);
  if (a < 10) return t("just now");
  const rtf = new Intl.RelativeTimeFormat(locale(), { numeric: "auto" });
  if (a < 60) return rtf.format(s, "second");
  if (a < 3600) return rtf.format(Math.round(s / 60), "minute");
  if (a < 172800) return rtf.format(Math.round(s / 3600), "hour");
  return rtf.format(Math.round(s / 86400), "day");
}

// Units as a field name's last word says them (total_m3, flow_temperature_c): their symbols.
const UNIT_WORDS = { kwh: "kWh", mwh: "MWh", wh: "Wh", gj: "GJ", mj: "MJ", m3: "m³", l: "l", m3h: "m³/h", lh: "l/h",
  c: "°C", k: "K", w: "W", kw: "kW", mw: "MW", v: "V", a: "A", h: "h", s: "s", min: "min", pct: "%", dbm: "dBm",
  hca: "", counter: "", days: "d" };

// A reading's field name (driver-made, e.g. "average_room_temperature_last_month_c") as words:
// its unit split off, the words in the console's language. -> {label, unit}
export function fieldLabel(name) {
  const parts = String(name).toLowerCase().split("_").filter(Boolean);
  let unit = "";
  if (parts.length > 1 && parts[parts.length - 1] in UNIT_WORDS) unit = UNIT_WORDS[parts.pop()];
  // the longest known phrase first: "room_temperature" is one word in German (Raumtemperatur)
  const words = [];
  for (let i = 0; i < parts.length;) {
    let j = parts.length;
    while (j > i + 1 && VALUE_DE[parts.slice(i, j).join("_")] === undefined) j -= 1;
    const w = parts.slice(i, j).join("_");
    const pair = VALUE_DE[w];
    if (/^\d+$/.test(w)) words.push(String(Number(w)));
    else if (pair) words.push(current === "de" ? pair[0] : pair[1]);
    else {
      if (current === "de") window.omshubMissing.add("word:" + w);
      words.push(w);
    }
    i = j;
  }
  const text = words.join(" ");
  return { label: text.charAt(0).toUpperCase() + text.slice(1), unit };
}

// A number as people type it: "1.234,5" or "1234,5" (German), "1,234.5" or "1234.5" (English);
// the separator that comes last is the decimal one. NaN when it is no number.
export function parseNumber(text) {
  const s = String(text).trim().replace(/[\s\u00a0']/g, "");
  if (!/^[+-]?[\d.,]+$/.test(s)) return NaN;
  const comma = s.lastIndexOf(",");
  const dot = s.lastIndexOf(".");
  const decimal = comma > dot ? "," : ".";
  const thousands = decimal === "," ? "." : ",";
  const plain = s.split(thousands).join("").replace(decimal, ".");
  return /^[+-]?\d*\.?\d+$|^[+-]?\d+\.?$/.test(plain) ? Number(plain) : NaN;
}

// A unit as the API writes it (m3, m3/h) as people write it (m³, m³/h).
export function unitText(unit) {
  if (!unit) return "";
  return String(unit).replace(/m3/g, "m³").replace(/^HCA$/, current === "de" ? "Einheiten" : "units");
}

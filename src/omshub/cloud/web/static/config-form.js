// The gateway configuration as a form (docs/formats.md §3), with an "advanced JSON" mode.
// The form shows a gateway's desired configuration and sends only what the operator changed, as a
// JSON merge patch (RFC 7386): every setting not touched stays as it is on the gateway, including
// settings someone else changes meanwhile. The API validates the result; its message is shown.
import { listAll } from "./api.js";
import { fmtNum, t, tn } from "./i18n.js";
import { field, h, newId } from "./ui.js";

export const LINK_MODES = ["T1", "C1", "S1", "T2", "C2", "S2", "N"];
export const DEFAULT_CONFIG = {
  timezone: "UTC",
  collection: [{ cron: "0 0 2 * * *", duration_s: 900, link_modes: ["T1", "C1"], max_telegrams: 2000 }],
  upload: { cron: "0 30 3 * * *", max_batch: 5000 },
  spread_s: 1800,
  filters: { mode: "whitelist", meters: [], manufacturers: [], device_types: [], ci: [] },
  keep: "newest_per_kind",
};
const CRON_HINT = "6 fields: second minute hour day-of-month month day-of-week, e.g. 0 30 3 * * * = daily at 03:30:00";
// a configuration key as people read it (describePatch)
const CONFIG_WORDS = { timezone: "time zone", collection: "listen window", cron: "schedule", duration_s: "length in seconds",
  link_modes: "link modes", max_telegrams: "most telegrams", upload: "upload", max_batch: "telegrams per upload",
  spread_s: "spread in seconds", filters: "meter filter", mode: "mode", meters: "meters", manufacturers: "manufacturers",
  device_types: "device types", ci: "CI fields", keep: "keep" };

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

export function deepEqual(a, b) {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  if (!isObject(a) || !isObject(b)) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => k in b && deepEqual(a[k], b[k]));
}

// The smallest merge patch turning `before` into `after`: objects are compared key by key, a key
// that is gone becomes null (back to its default), arrays and values are sent whole when they differ.
export function diffPatch(before, after) {
  const patch = {};
  for (const [k, v] of Object.entries(after)) {
    if (isObject(v) && isObject(before[k])) {
      const inner = diffPatch(before[k], v);
      if (Object.keys(inner).length) patch[k] = inner;
    } else if (!(k in before) || !deepEqual(before[k], v)) {
      patch[k] = v;
    }
  }
  for (const k of Object.keys(before)) if (!(k in after)) patch[k] = null;
  return patch;
}

// A merge patch as lines for people: "upload.cron: 0 0 5 * * *", "timezone: back to its default".
export function describePatch(patch, prefix = "") {
  const lines = [];
  for (const [k, v] of Object.entries(patch || {})) {
    const name = prefix + (CONFIG_WORDS[k] ? t(CONFIG_WORDS[k]) : k);
    if (isObject(v) && Object.keys(v).length) lines.push(...describePatch(v, name + ", "));
    else if (v === null) lines.push(`${name}: ${t("back to its default")}`);
    else lines.push(`${name}: ${plain(v)}`);
  }
  return lines;
}

// a setting's value in words: lists joined, windows and meters described, never JSON
function plain(v) {
  if (Array.isArray(v)) return v.length ? v.map(plain).join(", ") : t("none");
  if (isObject(v)) {
    if ("id" in v) return `${v.manufacturer || ""} ${v.id}`.trim();
    return Object.entries(v).map(([k, x]) => `${CONFIG_WORDS[k] ? t(CONFIG_WORDS[k]) : k} ${plain(x)}`).join(", ");
  }
  if (typeof v === "number") return fmtNum(v);
  if (typeof v === "boolean") return v ? t("yes") : t("no");
  return String(v);
}

function withoutVersion(c) {
  const { version: _version, ...rest } = c || {};
  return rest;
}

function int(input) {
  const text = input.value.trim();
  if (text === "") return null;
  const n = Number(text);
  return Number.isFinite(n) ? n : text;
}

function words(text) {
  return text.split(/[\s,;]+/).map((w) => w.trim()).filter(Boolean);
}

// "KAM 12345678", "KAM:12345678", "KAM,12345678", "12345678" (one per line) -> [{manufacturer, id}]
export function parseMeterList(text) {
  const out = [];
  for (const line of text.split(/\r?\n/)) {
    const parts = line.trim().split(/[\s,;:]+/).filter(Boolean);
    if (!parts.length) continue;
    if (parts.length === 1) out.push({ manufacturer: null, id: parts[0] });
    else out.push({ manufacturer: parts[0].toUpperCase(), id: parts[1] });
  }
  return out;
}

function timezones() {
  try {
    return Intl.supportedValuesOf("timeZone");
  } catch {
    return ["UTC", "Europe/Berlin", "Europe/Vienna", "Europe/Zurich"];
  }
}

export function configForm(initial, { readOnly = false, gatewayId = null } = {}) {
  // what the form started from: a change is the difference to it
  let baseline = withoutVersion(structuredClone(initial || DEFAULT_CONFIG));
  const zonesId = newId("zones");
  const tz = h("input", { name: "timezone", list: zonesId, autocomplete: "off" });
  const zoneList = h("datalist", { id: zonesId }, timezones().map((z) => h("option", { value: z })));
  const windows = h("div", { class: "windows" });
  const uploadCron = h("input", { name: "upload_cron", class: "mono", autocomplete: "off", spellcheck: "false" });
  const maxBatch = h("input", { name: "max_batch", type: "number", min: 1, max: 5000, step: 1 });
  const spread = h("input", { name: "spread_s", type: "number", min: 0, max: 86400, step: 1 });
  const mode = h("select", { name: "filter_mode" },
    h("option", { value: "whitelist" }, t("Only the listed meters (whitelist)")),
    h("option", { value: "blacklist" }, t("All meters except the listed (blacklist)")));
  const meterRows = h("tbody");
  const manufacturers = h("input", { name: "manufacturers", autocomplete: "off", placeholder: t("e.g. KAM, DME") });
  const deviceTypes = h("input", { name: "device_types", autocomplete: "off", placeholder: t("e.g. 4, 7") });
  const ci = h("input", { name: "ci", autocomplete: "off", placeholder: t("e.g. 7A, 72") });
  const keep = h("select", { name: "keep" },
    h("option", { value: "newest_per_kind" }, t("Newest telegram per meter and kind")),
    h("option", { value: "all" }, t("All telegrams")));
  const meterCount = h("span", { class: "muted", "aria-live": "polite" });

  const meterTable = h("div", { class: "table-wrap" }, h("table", { class: "meters-table" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("Manufacturer")), h("th", { scope: "col" }, t("Meter id")),
      h("th", { scope: "col" }, h("span", { class: "sr-only" }, t("Actions"))))),
    meterRows));

  function updateCount() {
    const n = meterRows.children.length;
    meterTable.hidden = n === 0;
    meterCount.textContent = n ? tn(n, "One meter on the list (at most 250)", "{n} meters on the list (at most 250)") :
      t("No meters on the list.");
  }

  function meterRow(m = { manufacturer: "", id: "" }) {
    const mf = h("input", { class: "mono short", value: m.manufacturer || "", "aria-label": t("Manufacturer"),
                            maxlength: 3, placeholder: "KAM" });
    const id = h("input", { class: "mono", value: m.id || "", "aria-label": t("Meter id"), maxlength: 8,
                            placeholder: "12345678" });
    const row = h("tr", { class: "meter-row" }, h("td", {}, mf), h("td", {}, id),
      h("td", {}, readOnly ? null : h("button", { type: "button", class: "link danger", "aria-label": t("Remove meter"),
        onclick: () => { row.remove(); updateCount(); } }, t("Remove"))));
    row._value = () => ({ manufacturer: mf.value.trim() ? mf.value.trim().toUpperCase() : null, id: id.value.trim() });
    return row;
  }

  function windowBox(w) {
    const legendId = newId("w");
    const cron = h("input", { name: "collection_cron", class: "mono", value: w.cron ?? "", autocomplete: "off",
                              spellcheck: "false" });
    const duration = h("input", { name: "duration_s", type: "number", min: 1, max: 86400, step: 1,
                                  value: w.duration_s ?? "" });
    const maxT = h("input", { name: "max_telegrams", type: "number", min: 1, max: 100000, step: 1,
                              value: w.max_telegrams ?? "" });
    const modes = LINK_MODES.map((lm) => {
      const box = h("input", { type: "checkbox", value: lm, checked: (w.link_modes || []).includes(lm) });
      return h("label", { class: "check" }, box, " ", lm);
    });
    const box = h("fieldset", { class: "window", "aria-labelledby": legendId },
      h("legend", { id: legendId }, t("Listen window")),
      h("div", { class: "row" },
        field(t("Start (cron with seconds)"), cron, t(CRON_HINT)),
        field(t("Length (seconds)"), duration, t("e.g. 900 = 15 minutes")),
        field(t("Max. telegrams"), maxT)),
      h("fieldset", { class: "modes" }, h("legend", {}, t("Link modes")), modes),
      readOnly ? null : h("button", { type: "button", class: "link danger", onclick: () => {
        box.remove();
        renumber();
      } }, t("Remove this window")));
    // the stored order first, so an untouched window compares equal and is not sent
    const checked = () => modes.map((l) => l.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
    box._value = () => ({
      ...w, // settings of the window the form has no field for stay as they are
      cron: cron.value.trim(), duration_s: int(duration), max_telegrams: int(maxT),
      link_modes: [...(w.link_modes || []).filter((m) => checked().includes(m)),
                   ...checked().filter((m) => !(w.link_modes || []).includes(m))],
    });
    return box;
  }

  function renumber() {
    [...windows.children].forEach((w, i) => { w.querySelector("legend").textContent = t("Listen window {n}", { n: i + 1 }); });
  }

  // settings the form has no field for are kept as they are (the API judges them)
  let extras = {};
  let up = {};
  let f = {};

  function set(c) {
    extras = Object.fromEntries(Object.entries(c || {}).filter(([k]) => !(k in DEFAULT_CONFIG) && k !== "version"));
    const d = { ...DEFAULT_CONFIG, ...c };
    up = { ...DEFAULT_CONFIG.upload, ...(d.upload || {}) };
    f = { ...DEFAULT_CONFIG.filters, ...(d.filters || {}) };
    tz.value = d.timezone ?? "";
    windows.replaceChildren(...(d.collection || []).map(windowBox));
    renumber();
    uploadCron.value = up.cron ?? "";
    maxBatch.value = up.max_batch ?? "";
    spread.value = d.spread_s ?? "";
    mode.value = f.mode;
    meterRows.replaceChildren(...(f.meters || []).map(meterRow));
    manufacturers.value = (f.manufacturers || []).join(", ");
    deviceTypes.value = (f.device_types || []).join(", ");
    ci.value = (f.ci || []).join(", ");
    keep.value = d.keep || "newest_per_kind";
    updateCount();
  }

  function formValue() {
    return {
      ...extras,
      timezone: tz.value.trim(),
      collection: [...windows.children].map((w) => w._value()),
      upload: { ...up, cron: uploadCron.value.trim(), max_batch: int(maxBatch) },
      spread_s: int(spread),
      filters: {
        ...f,
        mode: mode.value,
        meters: [...meterRows.children].map((r) => r._value()).filter((m) => m.id || m.manufacturer),
        manufacturers: words(manufacturers.value).map((w) => w.toUpperCase()),
        device_types: words(deviceTypes.value).map((w) => (/^\d+$/.test(w) ? Number(w) : w)),
        ci: words(ci.value),
      },
      keep: keep.value,
    };
  }

  // the meter list tools
  const paste = h("textarea", { rows: 4, class: "mono", placeholder: "KAM 12345678\nDME 87654321" });
  const meterTools = readOnly ? null : h("div", { class: "meter-tools" },
    h("button", { type: "button", class: "secondary", onclick: () => { meterRows.append(meterRow()); updateCount(); } },
      t("Add a meter")),
    gatewayId === null ? null : h("button", { type: "button", class: "secondary", onclick: async (ev) => {
      ev.target.disabled = true;
      try {
        const have = new Set([...meterRows.children].map((r) => `${r._value().manufacturer}:${r._value().id}`));
        for (const m of await listAll("/meters", { gateway_id: gatewayId }, 250)) {
          if (!have.has(`${m.manufacturer}:${m.meter_id}`)) {
            meterRows.append(meterRow({ manufacturer: m.manufacturer, id: m.meter_id }));
          }
        }
        updateCount();
      } finally {
        ev.target.disabled = false;
      }
    } }, t("Add the meters registered on this gateway")),
    h("details", {}, h("summary", {}, t("Paste a list")),
      field(t("Meters, one per line (manufacturer and id, or only the id)"), paste),
      h("button", { type: "button", class: "secondary", onclick: () => {
        for (const m of parseMeterList(paste.value)) meterRows.append(meterRow(m));
        paste.value = "";
        updateCount();
      } }, t("Add these meters"))));

  const formPart = h("div", { class: "config-fields" },
    h("fieldset", {}, h("legend", {}, t("General")),
      h("div", { class: "row" },
        field(t("Time zone"), tz, t("Schedules below are in this time zone")), zoneList,
        field(t("Spread (seconds)"), spread, t("Each gateway shifts its schedule by a fixed offset below this, so a fleet does not wake at once")),
        field(t("Keep"), keep))),
    h("fieldset", {}, h("legend", {}, t("Collection (when the gateway listens to meters)")), windows,
      readOnly ? null : h("button", { type: "button", class: "secondary", onclick: () => {
        windows.append(windowBox(DEFAULT_CONFIG.collection[0]));
        renumber();
      } }, t("Add a listen window"))),
    h("fieldset", {}, h("legend", {}, t("Upload (when the gateway sends its telegrams)")),
      h("div", { class: "row" },
        field(t("Upload time (cron with seconds)"), uploadCron, t(CRON_HINT)),
        field(t("Max. telegrams per upload"), maxBatch))),
    h("fieldset", {}, h("legend", {}, t("Meter filter")),
      field(t("Mode"), mode),
      meterTable, h("p", {}, meterCount), meterTools,
      h("div", { class: "row" },
        field(t("Manufacturers (optional)"), manufacturers, t("3-letter codes, comma-separated")),
        field(t("Device types (optional)"), deviceTypes, t("codes 0–255, e.g. 4 heat, 7 water, 8 heat cost allocator")),
        field(t("CI fields (optional)"), ci, t("hex bytes")))));

  const json = h("textarea", { class: "mono json", rows: 20, spellcheck: "false", "aria-label": t("Configuration as JSON"),
                               hidden: true });
  const jsonError = h("p", { class: "message error", role: "alert", hidden: true });
  const toggle = h("input", { type: "checkbox", name: "advanced" });
  toggle.addEventListener("change", () => {
    jsonError.hidden = true;
    if (toggle.checked) {
      json.value = JSON.stringify(formValue(), null, 2);
    } else {
      try {
        set(JSON.parse(json.value));
      } catch (err) {
        jsonError.textContent = t("The JSON cannot be read; check it for a missing comma, quote or bracket.");
        jsonError.hidden = false;
        toggle.checked = true;
        return;
      }
    }
    json.hidden = !toggle.checked;
    formPart.hidden = toggle.checked;
  });

  // the JSON view stays switchable for viewers too: reading it changes nothing
  const el = h("div", {},
    h("label", { class: "check advanced" }, toggle, " " + (readOnly ? t("Show as JSON (advanced)") : t("Edit as JSON (advanced)"))),
    h("fieldset", { class: "config-form", disabled: readOnly },
      h("legend", { class: "sr-only" }, t("Gateway configuration")), formPart, json),
    jsonError);
  set(baseline);

  // the whole configuration as shown; throws Error when the advanced JSON cannot be parsed
  function value() {
    if (!toggle.checked) return formValue();
    let parsed;
    try {
      parsed = JSON.parse(json.value);
    } catch (err) {
      throw new Error(t("The JSON cannot be read; check it for a missing comma, quote or bracket."));
    }
    if (!isObject(parsed)) throw new Error(t("The JSON must be an object ({ ... })."));
    return withoutVersion(parsed);
  }

  return {
    el,
    set,
    value,
    // what the operator changed, as a merge patch ({} when nothing)
    patch() {
      return diffPatch(baseline, value());
    },
    // show `config` (e.g. the head-end's answer after a change) and measure changes from it
    rebase(config) {
      baseline = withoutVersion(structuredClone(config));
      set(baseline);
      if (toggle.checked) json.value = JSON.stringify(formValue(), null, 2);
    },
  };
}

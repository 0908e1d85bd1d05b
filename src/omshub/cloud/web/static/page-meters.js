// Meters: search, register, CSV imports (meters, keys), a meter's page with its readings.
import { api, can, listAll } from "./api.js";
import { fieldLabel, fmtDate, fmtTime, t, tv, unitText } from "./i18n.js";
import { busy, field, fmtNum, h, messageBox, pagedTable, readFile, section, stateBadge, table, timeEl } from "./ui.js";
import { meterCharts } from "./page-charts.js";

const DEVICE_TYPES = ["heat", "water", "warm_water", "hot_water", "cold_water", "cooling", "heat_cooling",
  "heat_cost_allocator", "gas", "electricity", "smoke_detector", "room_sensor"];

function meterLink(m) {
  return h("a", { href: `#/meters/${m.id}` }, `${m.manufacturer} ${m.meter_id}`);
}

export const METER_COLUMNS = [
  { label: t("Meter"), cell: meterLink },
  { label: t("Type"), cell: (m) => tv(m.device_type) },
  { label: t("Key"), cell: (m) => stateBadge(m.key_status) },
  { label: t("Gateway"), cell: (m) => (m.gateway_id ? h("a", { href: `#/gateways/${m.gateway_id}` }, m.gateway || m.gateway_id) : "—") },
  { label: t("Metering point"), cell: (m) => (m.metering_point ? h("a", { href: `#/points/${m.metering_point.id}` }, m.metering_point.ref) : "—") },
  { label: t("Last heard"), cell: (m) => timeEl(m.last_heard_at) },
];

export function renderList(main, _params, query) {
  document.title = t("Meters — omshub console");
  const msg = messageBox();
  const manufacturer = h("input", { name: "manufacturer", maxlength: 3, class: "short", value: query.get("manufacturer") || "" });
  const meterId = h("input", { name: "meter_id", maxlength: 8, value: query.get("meter_id") || "" });
  const type = h("input", { name: "device_type", list: "device-types", value: query.get("device_type") || "" });
  const key = h("select", { name: "key_status" }, h("option", { value: "" }, t("any")),
    ["present", "suspect", "missing", "wrong"].map((k) => h("option", { value: k, selected: query.get("key_status") === k }, tv(k))));
  const search = h("form", { class: "inline-form", role: "search" },
    field(t("Manufacturer"), manufacturer), field(t("Meter id"), meterId), field(t("Device type"), type), field(t("Key"), key),
    h("datalist", { id: "device-types" }, DEVICE_TYPES.map((d) => h("option", { value: d }, tv(d)))),
    h("button", { type: "submit" }, t("Start the search")));
  search.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, el] of [["manufacturer", manufacturer], ["meter_id", meterId], ["device_type", type], ["key_status", key]]) {
      if (el.value.trim()) q.set(k, el.value.trim());
    }
    location.hash = "#/meters" + (q.toString() ? "?" + q : "");
  });
  const params = Object.fromEntries(query.entries());
  main.append(h("h1", {}, t("Meters")), section(t("Search"), search), msg.el,
    pagedTable(METER_COLUMNS, (cursor) => api("GET", "/meters", { query: { ...params, cursor, limit: 100 } }), msg,
      { empty: t("No meters found.") }));
  if (can("operator")) main.append(h("div", { class: "grid2" }, registerForm(), importForms()));
}

function registerForm() {
  const msg = messageBox();
  const manufacturer = h("input", { name: "manufacturer", maxlength: 3, required: true, class: "short", placeholder: "KAM" });
  const meterId = h("input", { name: "meter_id", maxlength: 8, required: true, placeholder: "12345678" });
  const type = h("input", { name: "device_type", list: "device-types", placeholder: "heat" });
  const gateway = h("select", { name: "gateway_id" }, h("option", { value: "" }, t("— none —")));
  listAll("/gateways", {}, 1000).then((gws) => gateway.append(...gws.map((g) => h("option", { value: g.id }, g.serial))))
    .catch((err) => msg.error(err.message));
  const submit = h("button", { type: "submit" }, t("Register meter"));
  const form = h("form", {}, msg.el, h("div", { class: "row" }, field(t("Manufacturer"), manufacturer), field(t("Meter id"), meterId)),
    h("div", { class: "row" }, field(t("Device type"), type, t("heat, water, … or a code")), field(t("Gateway"), gateway)),
    submit);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(submit, msg, async () => {
      const m = await api("POST", "/meters", { body: {
        manufacturer: manufacturer.value.trim(), meter_id: meterId.value.trim(),
        device_type: type.value.trim() || null, gateway_id: gateway.value ? Number(gateway.value) : null } });
      form.reset();
      msg.ok(t("Meter {meter} registered.", { meter: `${m.manufacturer} ${m.meter_id}` }));
    });
  });
  return section(t("Register a meter"), form);
}

function uploadForm({ label, hint, path, describe, button }) {
  const msg = messageBox();
  const file = h("input", { type: "file", accept: ".csv,text/csv", required: true });
  const submit = h("button", { type: "submit" }, button);
  const form = h("form", {}, msg.el, field(label, file, hint), submit);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!file.files.length) {
      msg.error(t("Choose a CSV file first."));
      return;
    }
    busy(submit, msg, async () => {
      const text = await readFile(file.files[0]);
      const res = await api("POST", path, { body: text, contentType: "text/csv" });
      form.reset();
      msg.ok(describe(res));
    });
  });
  return form;
}

function importForms() {
  return section(t("Import from CSV"),
    uploadForm({ label: t("Meter list (CSV)"), path: "/meters/import", button: t("Import meters"),
      hint: t("A CSV file with the columns manufacturer, id and device_type, optionally gateway, metering_point, " +
        "address, customer_ref and installed_at (the first line names them)."),
      describe: (r) => t("Lines read: {lines}; meters created: {created}, changed: {updated}, unchanged: {unchanged}; " +
        "metering points created: {points}; meters installed: {installed}.", { lines: fmtNum(r.lines), created: fmtNum(r.created),
        updated: fmtNum(r.updated), unchanged: fmtNum(r.unchanged), points: fmtNum(r.points_created),
        installed: fmtNum(r.installed) }) }),
    h("hr"),
    uploadForm({ label: t("Meter keys (CSV)"), path: "/keys/import", button: t("Import keys"),
      hint: t("A CSV file with the columns id and key, optionally manufacturer (the first line names them). Keys " +
        "are stored encrypted and never shown again."),
      describe: (r) => t("Keys imported: {imported}, of them replaced: {replaced}; waiting telegrams now decoded: {requeued}.",
        { imported: fmtNum(r.imported), replaced: fmtNum(r.replaced), requeued: fmtNum(r.requeued) }) }));
}

function recordsTable(records) {
  return table([
    { label: t("Quantity"), cell: (r) => tv(r.quantity) },
    { label: t("Value"), class: "num", cell: (r) => showValue(r.value, "") },
    { label: t("Unit"), cell: (r) => unitText(r.unit) },
    { label: t("Storage"), class: "num", cell: (r) => r.storage ?? "" },
    { label: t("Tariff"), class: "num", cell: (r) => r.tariff ?? "" },
    { label: t("Function"), cell: (r) => (r.function ? tv(r.function) : "") },
  ], records, { empty: t("The reading has no records.") });
}

// A value of a reading as people read it: numbers with the language's separators and the unit,
// dates in the one date format, lists and groups (monthly values) as lists — never as JSON.
function showValue(v, unit) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number") return unit ? `${fmtNum(v, 6)} ${unit}` : fmtNum(v, 6);
  if (typeof v === "boolean") return v ? t("yes") : t("no");
  if (typeof v === "string") return /^\d{4}-\d{2}-\d{2}(T|$)/.test(v) ? (v.length > 10 ? fmtTime(v) : fmtDate(v)) : tv(v);
  if (Array.isArray(v)) return h("ol", { class: "values" }, v.map((x) => h("li", {}, showValue(x, unit))));
  return h("dl", { class: "facts inner" }, Object.entries(v).map(([k, x]) => {
    const f = fieldLabel(k);
    return [h("dt", {}, f.label), h("dd", {}, showValue(x, f.unit || unit))];
  }));
}

function fieldsList(fields) {
  const entries = Object.entries(fields || {});
  if (!entries.length) return h("p", { class: "muted" }, t("No named values."));
  return h("dl", { class: "facts" }, entries.map(([k, v]) => {
    const f = fieldLabel(k);
    return [h("dt", {}, f.label), h("dd", {}, showValue(v, f.unit))];
  }));
}

export function renderMeter(main, [id]) {
  const msg = messageBox();
  const title = h("h1", {}, t("Meter"));
  const facts = h("div");
  const latest = h("div");
  const recent = h("div");
  const tgs = h("div");
  main.append(title, msg.el, h("div", { class: "grid2" }, section(t("Meter"), facts), section(t("Latest reading"), latest)),
    ...meterCharts(id), section(t("Recent readings"), recent), section(t("Telegrams"), tgs));
  (async () => {
    try {
      const [m, readings] = await Promise.all([api("GET", `/meters/${id}`),
        api("GET", `/console/meters/${id}/recent-readings`, { query: { limit: 20 } })]);
      title.textContent = t("Meter {meter}", { meter: `${m.manufacturer} ${m.meter_id}` });
      document.title = t("{name} — omshub console", { name: `${m.manufacturer} ${m.meter_id}` });
      facts.append(h("dl", { class: "facts" },
        h("dt", {}, t("Device type")), h("dd", {}, tv(m.device_type)),
        h("dt", {}, t("Key")), h("dd", {}, stateBadge(m.key_status),
          m.key_status === "present" ? " " + t("(the key itself is never shown)") : ""),
        h("dt", {}, t("Gateway")), h("dd", {}, m.gateway_id ? h("a", { href: `#/gateways/${m.gateway_id}` }, m.gateway) : "—"),
        h("dt", {}, t("Metering point")), h("dd", {}, m.metering_point ?
          h("a", { href: `#/points/${m.metering_point.id}` }, m.metering_point.ref) : "—"),
        h("dt", {}, t("Last heard")), h("dd", {}, timeEl(m.last_heard_at)),
        h("dt", {}, t("Registered")), h("dd", {}, timeEl(m.created_at, false))));
      const r = readings.items[0];
      if (r) {
        latest.append(h("p", {}, t("Meter time") + " ", timeEl(r.timestamp, false), ", " + t("received") + " ",
          timeEl(r.received_at), r.status && r.status.flags && r.status.flags.length ?
            [" — " + t("status:") + " ", r.status.flags.map((x) => tv(x)).join(", ")] : ""),
          fieldsList(r.fields), h("h3", {}, t("Records")), recordsTable(r.records));
      } else {
        latest.append(h("p", { class: "muted" }, t("No reading yet.")));
      }
      recent.append(table([
        { label: t("Meter time"), cell: (x) => timeEl(x.timestamp, false) },
        { label: t("Received"), cell: (x) => timeEl(x.received_at, false) },
        { label: t("Values"), cell: (x) => Object.entries(x.fields || {}).filter(([, v]) => typeof v === "number").slice(0, 4)
          .map(([k, v]) => { const f = fieldLabel(k); return `${f.label}: ${showValue(v, f.unit)}`; }).join("; ") },
      ], readings.items, { empty: t("No readings yet.") }));
      tgs.append(pagedTable([
        { label: t("Received"), cell: (tg) => timeEl(tg.received_at, false) },
        { label: t("Gateway"), cell: (tg) => h("a", { href: `#/gateways/${tg.gateway_id}` }, tg.gateway || tg.gateway_id) },
        { label: t("Link"), cell: (tg) => tg.link_mode },
        { label: t("Signal"), class: "num", cell: (tg) => (tg.rssi === null ? "—" : `${fmtNum(tg.rssi)} dBm`) },
        { label: t("State"), cell: (tg) => stateBadge(tg.state) },
        { label: t("Error"), cell: (tg) => (tg.error ? t("The telegram could not be read.") : "") },
      ], (cursor) => api("GET", "/telegrams", { query: { meter: id, cursor, limit: 20 } }), msg,
        { empty: t("No telegrams stored for this meter.") }));
    } catch (err) {
      msg.error(err.message);
    }
  })();
}

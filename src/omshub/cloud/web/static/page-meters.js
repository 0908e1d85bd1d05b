// Meters: search, register, CSV imports (meters, keys), a meter's page with its readings.
import { api, can, listAll } from "./api.js";
import { busy, field, fmtNum, h, messageBox, pagedTable, readFile, section, stateBadge, table, timeEl } from "./ui.js";

const DEVICE_TYPES = ["heat", "water", "warm_water", "hot_water", "cold_water", "cooling", "heat_cooling",
  "heat_cost_allocator", "gas", "electricity", "smoke_detector", "room_sensor"];

function meterLink(m) {
  return h("a", { href: `#/meters/${m.id}` }, `${m.manufacturer} ${m.meter_id}`);
}

export const METER_COLUMNS = [
  { label: "Meter", cell: meterLink },
  { label: "Type", cell: (m) => m.device_type || "—" },
  { label: "Key", cell: (m) => stateBadge(m.key_status) },
  { label: "Gateway", cell: (m) => (m.gateway_id ? h("a", { href: `#/gateways/${m.gateway_id}` }, m.gateway || m.gateway_id) : "—") },
  { label: "Metering point", cell: (m) => (m.metering_point ? h("a", { href: `#/points/${m.metering_point.id}` }, m.metering_point.ref) : "—") },
  { label: "Last heard", cell: (m) => timeEl(m.last_heard_at) },
];

export function renderList(main, _params, query) {
  document.title = "Meters — omshub console";
  const msg = messageBox();
  const manufacturer = h("input", { name: "manufacturer", maxlength: 3, class: "short", value: query.get("manufacturer") || "" });
  const meterId = h("input", { name: "meter_id", maxlength: 8, value: query.get("meter_id") || "" });
  const type = h("input", { name: "device_type", list: "device-types", value: query.get("device_type") || "" });
  const key = h("select", { name: "key_status" }, h("option", { value: "" }, "any"),
    ["present", "suspect", "missing", "wrong"].map((k) => h("option", { value: k, selected: query.get("key_status") === k }, k)));
  const search = h("form", { class: "inline-form", role: "search" },
    field("Manufacturer", manufacturer), field("Meter id", meterId), field("Device type", type), field("Key", key),
    h("datalist", { id: "device-types" }, DEVICE_TYPES.map((t) => h("option", { value: t }))),
    h("button", { type: "submit" }, "Search"));
  search.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, el] of [["manufacturer", manufacturer], ["meter_id", meterId], ["device_type", type], ["key_status", key]]) {
      if (el.value.trim()) q.set(k, el.value.trim());
    }
    location.hash = "#/meters" + (q.toString() ? "?" + q : "");
  });
  const params = Object.fromEntries(query.entries());
  main.append(h("h1", {}, "Meters"), section("Search", search), msg.el,
    pagedTable(METER_COLUMNS, (cursor) => api("GET", "/meters", { query: { ...params, cursor, limit: 100 } }), msg,
      { empty: "No meters found." }));
  if (can("operator")) main.append(h("div", { class: "grid2" }, registerForm(), importForms()));
}

function registerForm() {
  const msg = messageBox();
  const manufacturer = h("input", { name: "manufacturer", maxlength: 3, required: true, class: "short", placeholder: "KAM" });
  const meterId = h("input", { name: "meter_id", maxlength: 8, required: true, placeholder: "12345678" });
  const type = h("input", { name: "device_type", list: "device-types", placeholder: "heat" });
  const gateway = h("select", { name: "gateway_id" }, h("option", { value: "" }, "— none —"));
  listAll("/gateways", {}, 1000).then((gws) => gateway.append(...gws.map((g) => h("option", { value: g.id }, g.serial))))
    .catch((err) => msg.error(err.message));
  const submit = h("button", { type: "submit" }, "Register meter");
  const form = h("form", {}, h("div", { class: "row" }, field("Manufacturer", manufacturer), field("Meter id", meterId)),
    h("div", { class: "row" }, field("Device type", type, "heat, water, … or a code"), field("Gateway", gateway)),
    msg.el, submit);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(submit, msg, async () => {
      const m = await api("POST", "/meters", { body: {
        manufacturer: manufacturer.value.trim(), meter_id: meterId.value.trim(),
        device_type: type.value.trim() || null, gateway_id: gateway.value ? Number(gateway.value) : null } });
      form.reset();
      msg.ok(`Meter ${m.manufacturer} ${m.meter_id} registered.`);
    });
  });
  return section("Register a meter", form);
}

function uploadForm({ label, hint, path, describe, button }) {
  const msg = messageBox();
  const file = h("input", { type: "file", accept: ".csv,text/csv", required: true });
  const submit = h("button", { type: "submit" }, button);
  const form = h("form", {}, field(label, file, hint), msg.el, submit);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!file.files.length) {
      msg.error("Choose a CSV file first.");
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
  return section("Import from CSV",
    uploadForm({ label: "Meter list (CSV)", path: "/meters/import", button: "Import meters",
      hint: "Header row: manufacturer,id,device_type and optionally gateway,metering_point,address,customer_ref,installed_at",
      describe: (r) => `${r.lines} line(s): ${r.created} meter(s) created, ${r.updated} updated, ${r.unchanged} unchanged, ` +
        `${r.points_created} metering point(s) created, ${r.installed} installed.` }),
    h("hr"),
    uploadForm({ label: "Meter keys (CSV)", path: "/keys/import", button: "Import keys",
      hint: "Header row: id,key[,manufacturer]. Keys are stored encrypted and never shown again.",
      describe: (r) => `${r.imported} key(s) imported, ${r.replaced} replaced; ${r.requeued} waiting telegram(s) will be decoded.` }));
}

function recordsTable(records) {
  return table([
    { label: "Quantity", cell: (r) => r.quantity || "—" },
    { label: "Value", class: "num", cell: (r) => fmtNum(r.value, 6) },
    { label: "Unit", cell: (r) => r.unit || "" },
    { label: "Storage", class: "num", cell: (r) => r.storage ?? "" },
    { label: "Tariff", class: "num", cell: (r) => r.tariff ?? "" },
    { label: "Function", cell: (r) => r.function || "" },
  ], records, { empty: "The reading has no records." });
}

function fieldsList(fields) {
  const entries = Object.entries(fields || {});
  if (!entries.length) return h("p", { class: "muted" }, "No named values.");
  return h("dl", { class: "facts" }, entries.map(([k, v]) => [h("dt", {}, k.replaceAll("_", " ")),
    h("dd", {}, typeof v === "object" && v !== null ? JSON.stringify(v) : fmtNum(v, 6))]));
}

export function renderMeter(main, [id]) {
  const msg = messageBox();
  const title = h("h1", {}, "Meter");
  const facts = h("div");
  const latest = h("div");
  const recent = h("div");
  const tgs = h("div");
  main.append(title, msg.el, h("div", { class: "grid2" }, section("Meter", facts), section("Latest reading", latest)),
    section("Recent readings", recent), section("Telegrams", tgs));
  (async () => {
    try {
      const [m, readings] = await Promise.all([api("GET", `/meters/${id}`),
        api("GET", `/console/meters/${id}/recent-readings`, { query: { limit: 20 } })]);
      title.textContent = `Meter ${m.manufacturer} ${m.meter_id}`;
      document.title = `${m.manufacturer} ${m.meter_id} — omshub console`;
      facts.append(h("dl", { class: "facts" },
        h("dt", {}, "Device type"), h("dd", {}, m.device_type || "—"),
        h("dt", {}, "Key"), h("dd", {}, stateBadge(m.key_status),
          m.key_status === "present" ? " (the key itself is never shown)" : ""),
        h("dt", {}, "Gateway"), h("dd", {}, m.gateway_id ? h("a", { href: `#/gateways/${m.gateway_id}` }, m.gateway) : "—"),
        h("dt", {}, "Metering point"), h("dd", {}, m.metering_point ?
          h("a", { href: `#/points/${m.metering_point.id}` }, m.metering_point.ref) : "—"),
        h("dt", {}, "Last heard"), h("dd", {}, timeEl(m.last_heard_at)),
        h("dt", {}, "Registered"), h("dd", {}, timeEl(m.created_at, false))));
      const r = readings.items[0];
      if (r) {
        latest.append(h("p", {}, "Meter time ", timeEl(r.timestamp, false), ", received ", timeEl(r.received_at),
          r.status && r.status.flags && r.status.flags.length ? [" — status: ", r.status.flags.join(", ")] : ""),
          fieldsList(r.fields), h("h3", {}, "Records"), recordsTable(r.records));
      } else {
        latest.append(h("p", { class: "muted" }, "No reading yet."));
      }
      recent.append(table([
        { label: "Meter time", cell: (x) => timeEl(x.timestamp, false) },
        { label: "Received", cell: (x) => timeEl(x.received_at, false) },
        { label: "Values", cell: (x) => Object.entries(x.fields || {}).slice(0, 4)
          .map(([k, v]) => `${k.replaceAll("_", " ")}: ${typeof v === "number" ? fmtNum(v, 6) : v}`).join("; ") },
      ], readings.items, { empty: "No readings yet." }));
      tgs.append(pagedTable([
        { label: "Received", cell: (t) => timeEl(t.received_at, false) },
        { label: "Gateway", cell: (t) => h("a", { href: `#/gateways/${t.gateway_id}` }, t.gateway || t.gateway_id) },
        { label: "Link", cell: (t) => t.link_mode },
        { label: "Signal", class: "num", cell: (t) => (t.rssi === null ? "—" : `${t.rssi} dBm`) },
        { label: "State", cell: (t) => stateBadge(t.state) },
        { label: "Error", cell: (t) => t.error || "" },
      ], (cursor) => api("GET", "/telegrams", { query: { meter: id, cursor, limit: 20 } }), msg,
        { empty: "No telegrams stored for this meter." }));
    } catch (err) {
      msg.error(err.message);
    }
  })();
}

// Metering points: list, create, a point's installations (swap history) and its consumption.
import { api, can } from "./api.js";
import { parseNumber, t, tv } from "./i18n.js";
import { busy, field, fmtNum, h, messageBox, pagedTable, section, table, timeEl } from "./ui.js";
import { pointCharts } from "./page-charts.js";
import { billingValues } from "./page-billing.js";

function meterText(m) {
  return m ? h("a", { href: `#/meters/${m.id}` }, `${m.manufacturer} ${m.meter_id}`) : "—";
}

export function renderList(main) {
  document.title = t("Metering points — omshub console");
  const msg = messageBox();
  main.append(h("h1", {}, t("Metering points")), msg.el,
    pagedTable([
      { label: t("Point"), cell: (p) => h("a", { href: `#/points/${p.id}` }, p.ref) },
      { label: t("Address"), cell: (p) => p.address || "" },
      { label: t("Customer"), cell: (p) => p.customer_ref || "" },
      { label: t("Meter installed"), cell: (p) => (p.installation ? meterText(p.installation.meter) : "—") },
      { label: t("Since"), cell: (p) => (p.installation ? timeEl(p.installation.installed_at, false) : "") },
    ], (cursor) => api("GET", "/metering-points", { query: { cursor, limit: 100 } }), msg,
    { empty: t("No metering points yet. They are created by the meter CSV import or below.") }));
  if (can("operator")) main.append(createForm());
}

function createForm() {
  const msg = messageBox();
  const ref = h("input", { name: "ref", required: true });
  const address = h("input", { name: "address" });
  const customer = h("input", { name: "customer_ref" });
  const submit = h("button", { type: "submit" }, t("Create metering point"));
  const form = h("form", { class: "inline-form" }, msg.el, field(t("Reference"), ref), field(t("Address"), address),
    field(t("Customer reference"), customer), submit);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(submit, msg, async () => {
      const p = await api("POST", "/metering-points", { body: { ref: ref.value, address: address.value,
                                                                 customer_ref: customer.value } });
      location.hash = `#/points/${p.id}`;
    });
  });
  return section(t("Create a metering point"), form);
}

function values(v) {
  const e = Object.entries(v || {});
  return e.length ? e.map(([k, x]) => `${tv(k)} ${fmtNum(x, 6)}`).join(", ") : "—";
}

function dateInput(name, date) {
  const pad = (n) => String(n).padStart(2, "0");
  return h("input", { type: "date", name, required: true,
    value: `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` });
}

// a local calendar day -> the ISO instant it starts (the API needs a zone)
function dayStart(value) {
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d).toISOString();
}

export function renderPoint(main, [id]) {
  const msg = messageBox();
  const title = h("h1", {}, t("Metering point"));
  const facts = h("div");
  const history = h("div");
  const result = h("div", { id: "consumption-result", "aria-live": "polite" });
  const cMsg = messageBox();
  const now = new Date();
  const from = dateInput("from", new Date(now.getFullYear(), now.getMonth() - 1, 1));
  const to = dateInput("to", new Date(now.getFullYear(), now.getMonth(), 1));
  const quantity = h("select", { name: "quantity" }, h("option", { value: "" }, t("by meter type")),
    ["energy", "volume", "hca"].map((q) => h("option", { value: q }, tv(q))));
  const submit = h("button", { type: "submit" }, t("Show consumption"));
  const form = h("form", { class: "inline-form" }, field(t("From (start of day)"), from), field(t("To (start of day)"), to),
    field(t("Quantity"), quantity), submit);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!from.value || !to.value) {
      cMsg.error(t("Choose both days."));
      return;
    }
    busy(submit, cMsg, async () => {
      const c = await api("GET", `/metering-points/${id}/consumption`, { query: {
        from: dayStart(from.value), to: dayStart(to.value), quantity: quantity.value } });
      result.replaceChildren(consumptionView(c));
    });
  });
  const tasks = h("div", { id: "meter-tasks" });
  main.append(title, msg.el, section(t("Metering point"), facts), tasks,
    section(t("Consumption"), form, cMsg.el, result), pointCharts(id),
    billingValues(id), section(t("Installed meters (swap history)"), history));
  (async () => {
    try {
      const p = await api("GET", `/metering-points/${id}`);
      title.textContent = t("Metering point {ref}", { ref: p.ref });
      document.title = t("{name} — omshub console", { name: p.ref });
      facts.append(h("dl", { class: "facts" },
        h("dt", {}, t("Address")), h("dd", {}, p.address || "—"),
        h("dt", {}, t("Customer reference")), h("dd", {}, p.customer_ref || "—"),
        h("dt", {}, t("Meter now")), h("dd", {}, p.installation ? meterText(p.installation.meter) : t("none installed"))));
      if (can("operator")) tasks.replaceChildren(meterTasks(p));
      history.append(table([
        { label: t("Meter"), cell: (i) => meterText(i.meter) },
        { label: t("Type"), cell: (i) => tv(i.meter.device_type) },
        { label: t("Installed"), cell: (i) => timeEl(i.installed_at, false) },
        { label: t("Initial values"), cell: (i) => values(i.initial_values) },
        { label: t("Removed"), cell: (i) => (i.removed_at ? timeEl(i.removed_at, false) : t("still installed")) },
        { label: t("Final values"), cell: (i) => values(i.final_values) },
      ], [...p.installations].reverse(), { empty: t("No meter was ever installed here.") }));
    } catch (err) {
      msg.error(err.message);
    }
  })();
}

function consumptionView(c) {
  const total = c.value === null || c.value === undefined ? h("span", { class: "muted" }, t("not complete")) :
    h("strong", { class: "big" }, `${fmtNum(c.value, 3)} ${c.unit || ""}`.trim());
  return h("div", {},
    h("p", {}, t("{quantity} from", { quantity: tv(c.quantity) }) + " ", timeEl(c.from, false), " " + t("to") + " ",
      timeEl(c.to, false), ": ", total),
    table([
      { label: t("Meter"), cell: (s) => meterText(s.meter) },
      { label: t("From"), cell: (s) => timeEl(s.from, false) },
      { label: t("Start value"), class: "num", cell: (s) => (s.start ? fmtNum(s.start.value, 6) : "—") },
      { label: t("To"), cell: (s) => timeEl(s.to, false) },
      { label: t("End value"), class: "num", cell: (s) => (s.end ? fmtNum(s.end.value, 6) : "—") },
      { label: t("Consumption"), class: "num", cell: (s) => fmtNum(s.consumption, 6) },
      { label: t("Notes"), cell: (s) => s.flags.map((x) => tv(x)).join(", ") },
    ], c.segments, { empty: t("No meter in this period.") }),
    c.gaps.length ? h("p", { class: "message warn" }, t("Readings are missing for part of the period; the " +
      "consumption is not complete.")) : null,
    c.warnings.length ? h("p", { class: "message warn" }, t("Some readings of this period look unusual; check " +
      "the notes in the table.")) : null);
}

// --- install, swap and remove a meter (operators) ---

const METER_REF = /^([A-Za-z@]{3})[\s:/-]*([0-9A-Fa-f]{8})$/;

function meterInput(name) {
  return h("input", { name, required: true, autocomplete: "off", placeholder: t("e.g. KAM 31000001") });
}

// "KAM 31000001" -> the API's {manufacturer, meter_id}; an Error in plain words otherwise
function meterRef(input) {
  const m = METER_REF.exec(input.value.trim());
  if (!m) {
    input.focus();
    throw fieldError(input, t("Enter the manufacturer code and the 8-digit meter number, e.g. KAM 31000001."));
  }
  return { manufacturer: m[1].toUpperCase(), meter_id: m[2].toUpperCase() };
}

function fieldError(input, text) {
  const err = new Error(text);
  err.details = { fields: [{ field: input.name, message: text }] };
  return err;
}

function nowLocal() {
  const d = new Date();
  d.setSeconds(0, 0);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

// a reading of one register: the quantity and its value ({} when no value is given)
function registerInputs(prefix, labelText) {
  const quantity = h("select", { name: prefix + "_quantity" },
    ["energy", "volume", "hca"].map((q) => h("option", { value: q }, tv(q))));
  const value = h("input", { name: prefix + "_values", inputmode: "decimal", autocomplete: "off" });
  return {
    quantity,
    input: value,
    els: [field(t("Meter register"), quantity), field(labelText, value, t("As read on the meter's display"))],
    value: () => {
      if (value.value.trim() === "") return {};
      const n = parseNumber(value.value);
      if (Number.isNaN(n) || n < 0) {
        value.focus();
        throw fieldError(value, t("Enter the reading as a number, e.g. {example}.", { example: fmtNum(1234.5) }));
      }
      return { [quantity.value]: n };
    },
  };
}

function taskForm(title, button, parts, send) {
  const msg = messageBox();
  const submit = h("button", { type: "submit" }, button);
  const form = h("form", { novalidate: true }, msg.el, h("div", { class: "row" }, parts), submit);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(submit, msg, async () => {
      await send();
      window.dispatchEvent(new HashChangeEvent("hashchange")); // the point's page anew, with its history
    });
  });
  return section(title, form);
}

function atInput(name) {
  return h("input", { type: "datetime-local", name, required: true, value: nowLocal() });
}

function meterTasks(p) {
  const at = atInput("at");
  const when = () => {
    if (!at.value) throw fieldError(at, t("Enter the date and time."));
    return new Date(at.value).toISOString();
  };
  if (!p.installation) {
    const meter = meterInput("meter");
    const initial = registerInputs("initial", t("Initial reading"));
    return taskForm(t("Install a meter"), t("Install meter"),
      [field(t("Meter"), meter), field(t("Installed at"), at), ...initial.els],
      () => api("POST", `/metering-points/${p.id}/install`, { body: { meter: meterRef(meter), at: when(),
        initial_values: initial.value() } }));
  }
  const old = p.installation.meter;
  const newMeter = meterInput("new_meter");
  const final = registerInputs("old_final", t("Final reading of the old meter"));
  const initial = registerInputs("new_initial", t("Initial reading of the new meter"));
  const preview = swapPreview(p.installation, final);
  const swap = taskForm(t("Swap the meter"), t("Swap meter"),
    [h("p", { class: "muted" }, t("Installed now: {meter}", { meter: `${old.manufacturer} ${old.meter_id}` })),
      field(t("New meter"), newMeter), field(t("Swapped at"), at), ...final.els, preview, ...initial.els],
    () => api("POST", `/metering-points/${p.id}/swap`, { body: { at: when(), new_meter: meterRef(newMeter),
      old_final_values: final.value(), new_initial_values: initial.value() } }));
  const removedAt = atInput("removed_at");
  const removedFinal = registerInputs("final", t("Final reading"));
  const remove = taskForm(t("Remove the meter"), t("Remove this meter"),
    [field(t("Removed at"), removedAt), ...removedFinal.els],
    () => {
      if (!removedAt.value) throw fieldError(removedAt, t("Enter the date and time."));
      return api("POST", `/metering-points/${p.id}/remove`, { body: { at: new Date(removedAt.value).toISOString(),
        final_values: removedFinal.value() } });
    });
  return h("div", { class: "grid2" }, swap, remove);
}

// What the swap does to the consumption, shown while the final reading is typed: the old meter's
// consumption since its installation, and a warning when the reading is below its latest one.
function swapPreview(installation, final) {
  const box = h("p", { class: "preview", id: "swap-preview", "aria-live": "polite" });
  let latest = {};
  api("GET", `/console/meters/${installation.meter.id}/recent-readings`, { query: { limit: 1 } }).then((r) => {
    for (const rec of (r.items[0] && r.items[0].records) || []) {
      if (!rec.storage && !rec.tariff && rec.quantity && !(rec.quantity in latest)) latest[rec.quantity] = rec;
    }
    update();
  }).catch(() => { latest = {}; });
  function update() {
    const q = final.quantity.value;
    const n = parseNumber(final.input.value);
    box.replaceChildren();
    if (final.input.value.trim() === "" || Number.isNaN(n)) return;
    const start = (installation.initial_values || {})[q];
    const unit = latest[q] ? latest[q].unit || "" : "";
    if (start !== undefined) {
      box.append(t("Preview: the old meter's {quantity} consumption since its installation comes to {c} ({final} − {start}).",
        { quantity: tv(q), c: `${fmtNum(n - start, 6)} ${unit}`.trim(), final: fmtNum(n, 6), start: fmtNum(start, 6) }));
    } else {
      box.append(t("Preview: the old meter's consumption is counted from its first reading up to {final}.",
        { final: `${fmtNum(n, 6)} ${unit}`.trim() }));
    }
    if (latest[q] && n < latest[q].value) {
      box.append(" ", h("strong", {}, t("The final reading is lower than the meter's latest reading ({latest}); please check it.",
        { latest: `${fmtNum(latest[q].value, 6)} ${unit}`.trim() })));
    }
  }
  final.input.addEventListener("input", update);
  final.quantity.addEventListener("change", update);
  return box;
}

// Metering points: list, create, a point's installations (swap history) and its consumption.
import { api, can } from "./api.js";
import { t, tv } from "./i18n.js";
import { busy, field, fmtNum, h, messageBox, pagedTable, section, table, timeEl } from "./ui.js";

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
  main.append(title, msg.el, section(t("Metering point"), facts), section(t("Consumption"), form, cMsg.el, result),
    section(t("Installed meters (swap history)"), history));
  (async () => {
    try {
      const p = await api("GET", `/metering-points/${id}`);
      title.textContent = t("Metering point {ref}", { ref: p.ref });
      document.title = t("{name} — omshub console", { name: p.ref });
      facts.append(h("dl", { class: "facts" },
        h("dt", {}, t("Address")), h("dd", {}, p.address || "—"),
        h("dt", {}, t("Customer reference")), h("dd", {}, p.customer_ref || "—"),
        h("dt", {}, t("Meter now")), h("dd", {}, p.installation ? meterText(p.installation.meter) : t("none installed"))));
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

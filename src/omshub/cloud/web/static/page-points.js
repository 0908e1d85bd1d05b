// Metering points: list, create, a point's installations (swap history) and its consumption.
import { api, can } from "./api.js";
import { busy, field, fmtNum, h, messageBox, pagedTable, section, table, timeEl } from "./ui.js";

function meterText(m) {
  return m ? h("a", { href: `#/meters/${m.id}` }, `${m.manufacturer} ${m.meter_id}`) : "—";
}

export function renderList(main) {
  document.title = "Metering points — omshub console";
  const msg = messageBox();
  main.append(h("h1", {}, "Metering points"), msg.el,
    pagedTable([
      { label: "Point", cell: (p) => h("a", { href: `#/points/${p.id}` }, p.ref) },
      { label: "Address", cell: (p) => p.address || "" },
      { label: "Customer", cell: (p) => p.customer_ref || "" },
      { label: "Meter installed", cell: (p) => (p.installation ? meterText(p.installation.meter) : "—") },
      { label: "Since", cell: (p) => (p.installation ? timeEl(p.installation.installed_at, false) : "") },
    ], (cursor) => api("GET", "/metering-points", { query: { cursor, limit: 100 } }), msg,
    { empty: "No metering points yet. They are created by the meter CSV import or below." }));
  if (can("operator")) main.append(createForm());
}

function createForm() {
  const msg = messageBox();
  const ref = h("input", { name: "ref", required: true });
  const address = h("input", { name: "address" });
  const customer = h("input", { name: "customer_ref" });
  const submit = h("button", { type: "submit" }, "Create metering point");
  const form = h("form", { class: "inline-form" }, field("Reference", ref), field("Address", address),
    field("Customer reference", customer), submit);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(submit, msg, async () => {
      const p = await api("POST", "/metering-points", { body: { ref: ref.value, address: address.value,
                                                                 customer_ref: customer.value } });
      location.hash = `#/points/${p.id}`;
    });
  });
  return section("Create a metering point", form, msg.el);
}

function values(v) {
  const e = Object.entries(v || {});
  return e.length ? e.map(([k, x]) => `${k} ${fmtNum(x, 6)}`).join(", ") : "—";
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
  const title = h("h1", {}, "Metering point");
  const facts = h("div");
  const history = h("div");
  const result = h("div", { id: "consumption-result", "aria-live": "polite" });
  const cMsg = messageBox();
  const now = new Date();
  const from = dateInput("from", new Date(now.getFullYear(), now.getMonth() - 1, 1));
  const to = dateInput("to", new Date(now.getFullYear(), now.getMonth(), 1));
  const quantity = h("select", { name: "quantity" }, h("option", { value: "" }, "by meter type"),
    ["energy", "volume", "hca"].map((q) => h("option", { value: q }, q)));
  const submit = h("button", { type: "submit" }, "Show consumption");
  const form = h("form", { class: "inline-form" }, field("From (start of day)", from), field("To (start of day)", to),
    field("Quantity", quantity), submit);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!from.value || !to.value) {
      cMsg.error("Choose both days.");
      return;
    }
    busy(submit, cMsg, async () => {
      const c = await api("GET", `/metering-points/${id}/consumption`, { query: {
        from: dayStart(from.value), to: dayStart(to.value), quantity: quantity.value } });
      result.replaceChildren(consumptionView(c));
    });
  });
  main.append(title, msg.el, section("Metering point", facts), section("Consumption", form, cMsg.el, result),
    section("Installed meters (swap history)", history));
  (async () => {
    try {
      const p = await api("GET", `/metering-points/${id}`);
      title.textContent = `Metering point ${p.ref}`;
      document.title = `${p.ref} — omshub console`;
      facts.append(h("dl", { class: "facts" },
        h("dt", {}, "Address"), h("dd", {}, p.address || "—"),
        h("dt", {}, "Customer reference"), h("dd", {}, p.customer_ref || "—"),
        h("dt", {}, "Meter now"), h("dd", {}, p.installation ? meterText(p.installation.meter) : "none installed")));
      history.append(table([
        { label: "Meter", cell: (i) => meterText(i.meter) },
        { label: "Type", cell: (i) => i.meter.device_type || "—" },
        { label: "Installed", cell: (i) => timeEl(i.installed_at, false) },
        { label: "Initial values", cell: (i) => values(i.initial_values) },
        { label: "Removed", cell: (i) => (i.removed_at ? timeEl(i.removed_at, false) : "installed") },
        { label: "Final values", cell: (i) => values(i.final_values) },
      ], [...p.installations].reverse(), { empty: "No meter was ever installed here." }));
    } catch (err) {
      msg.error(err.message);
    }
  })();
}

function consumptionView(c) {
  const total = c.value === null || c.value === undefined ? h("span", { class: "muted" }, "not complete") :
    h("strong", { class: "big" }, `${fmtNum(c.value, 3)} ${c.unit}`);
  return h("div", {},
    h("p", {}, `${c.quantity || "—"} from `, timeEl(c.from, false), " to ", timeEl(c.to, false), ": ", total),
    table([
      { label: "Meter", cell: (s) => meterText(s.meter) },
      { label: "From", cell: (s) => timeEl(s.from, false) },
      { label: "Start value", class: "num", cell: (s) => (s.start ? fmtNum(s.start.value, 6) : "—") },
      { label: "To", cell: (s) => timeEl(s.to, false) },
      { label: "End value", class: "num", cell: (s) => (s.end ? fmtNum(s.end.value, 6) : "—") },
      { label: "Consumption", class: "num", cell: (s) => fmtNum(s.consumption, 6) },
      { label: "Notes", cell: (s) => s.flags.join(", ") },
    ], c.segments, { empty: "No meter in this period." }),
    [...c.gaps.map((g) => g.message), ...c.warnings].map((t) => h("p", { class: "message warn" }, t)));
}

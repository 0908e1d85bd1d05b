// Billing values: the review queue (findings of the validation rules, decided with a note) and a
// metering point's boundary values with their origin, editable with a reason (docs/billing.md).
import { api, can } from "./api.js";
import { lang, parseNumber, t, tv } from "./i18n.js";
import { badge, busy, field, fmtNum, h, messageBox, pagedTable, section, timeEl } from "./ui.js";

const UNITS = { energy: "kWh", volume: "m³", hca: "" };

function note(label) {
  return h("input", { type: "text", name: "note", required: true, maxlength: 500, "aria-label": label, placeholder: label });
}

// accept / reject with a note, in the row: the decision and the note are audited
function decideCell(f, reload, msg) {
  if (f.state !== "open" || !can("operator")) return f.note ? h("span", {}, f.note) : "—";
  const text = note(t("Note for the decision"));
  const accept = h("button", { type: "button" }, t("Accept"));
  const reject = h("button", { type: "button", class: "secondary" }, t("Reject"));
  const method = h("select", { name: "method", "aria-label": t("Estimation method") },
    ["previous_period", "comparable_units", "property_average"].map((m) => h("option", { value: m }, tv(m))));
  const estimate = h("button", { type: "button", class: "secondary" }, t("Estimate"));
  const form = h("div", { class: "inline-form" }, text, accept, reject, method, estimate);
  const decide = (action, button) => {
    if (!text.value.trim()) {
      msg.error(t("Write a note: why the value is right or wrong."));
      text.focus();
      return;
    }
    busy(button, msg, async () => {
      const body = { action, note: text.value.trim() };
      if (action === "estimate") body.method = method.value;
      await api("POST", `/review/${f.id}`, { body });
      reload();
      msg.ok({ accept: t("Accepted."), reject: t("Rejected: set or estimate the value.") }[action]
        || t("Estimated: the period's end value now carries the method's code."));
    });
  };
  accept.addEventListener("click", () => decide("accept", accept));
  reject.addEventListener("click", () => decide("reject", reject));
  estimate.addEventListener("click", () => decide("estimate", estimate));
  return form;
}

export function renderReview(main, _params, query) {
  document.title = t("Review queue — omshub console");
  const msg = messageBox();
  const state = query.get("state") || "open";
  const select = h("select", { name: "state" },
    ["open", "accepted", "rejected", "estimated", "cleared"].map((s) => h("option", { value: s, selected: s === state }, tv(s))));
  select.addEventListener("change", () => { location.hash = `#/review?state=${select.value}`; });
  const holder = h("div");
  const reload = () => holder.replaceChildren(list());
  const list = () => pagedTable([
    { label: t("Period"), cell: (f) => f.period },
    { label: t("Metering point"), cell: (f) => h("a", { href: `#/points/${f.metering_point_id}` }, f.metering_point_ref) },
    { label: t("Check"), cell: (f) => badge(tv(f.rule), f.severity === "error" ? "bad" : "warn") },
    { label: t("Finding"), cell: (f) => (lang() === "de" ? f.german : f.message) },
    { label: t("Found"), cell: (f) => timeEl(f.created_at, false) },
    { label: t("Decision"), cell: (f) => decideCell(f, reload, msg) },
  ], (cursor) => api("GET", "/review", { query: { state, cursor, limit: 100 } }), msg,
  { empty: state === "open" ? t("Nothing to review.") : t("No findings.") });
  main.append(h("h1", {}, t("Review queue")),
    h("p", { class: "muted" }, t("What the validation of the billing values found. A decision needs a note; raw readings are never changed.")),
    h("form", { class: "inline-form" }, field(t("Show"), select)), msg.el, holder);
  reload();
}

// set a boundary value by hand: the new value and the reason; what omshub computed stays
function editCell(v, reload, msg) {
  if (!can("operator")) return "—";
  const value = h("input", { type: "text", inputmode: "decimal", name: "value", required: true,
    "aria-label": t("New value"), placeholder: t("New value") });
  const reason = note(t("Reason for the change"));
  const save = h("button", { type: "submit", class: "secondary" }, t("Set value"));
  const form = h("form", { class: "inline-form" }, value, reason, save);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const number = parseNumber(value.value);
    if (Number.isNaN(number) || number < 0) {
      msg.error(t("The new value must be a number of 0 or more."));
      value.focus();
      return;
    }
    if (!reason.value.trim()) {
      msg.error(t("Write the reason for the change."));
      reason.focus();
      return;
    }
    busy(save, msg, async () => {
      await api("PUT", `/billing-values/${v.id}`, { body: { value: number, reason: reason.value.trim() } });
      msg.ok(t("Value set. The value omshub computed is kept next to it."));
      reload();
    });
  });
  return form;
}

export function billingValues(pointId) {
  const msg = messageBox();
  const holder = h("div");
  const reload = () => holder.replaceChildren(pagedTable([
    { label: t("Boundary"), cell: (v) => timeEl(v.boundary, false) },
    { label: t("Why"), cell: (v) => tv(v.reason) },
    { label: t("Meter register"), cell: (v) => tv(v.quantity) },
    { label: t("Value"), class: "num", cell: (v) => (v.value === null ? "–" :
      `${fmtNum(v.value, 3)} ${UNITS[v.quantity] || ""}`.trim() + (v.quality === "estimated" ? " *" : "")) },
    { label: t("Origin"), cell: (v) => tv(v.origin) },
    { label: t("Code"), cell: (v) => v.code || "—" },
    { label: t("State"), cell: (v) => badge(tv(v.state), v.state === "ok" ? "ok" : "warn") },
    { label: t("Change"), cell: (v) => editCell(v, reload, msg) },
  ], (cursor) => api("GET", `/metering-points/${pointId}/billing-values`, { query: { cursor, limit: 100 } }), msg,
  { empty: t("No billing period closed yet.") }));
  reload();
  return section(t("Billing values"),
    h("p", { class: "muted" }, t("The register at each period boundary, and where the value came from. * estimated, – missing.")),
    msg.el, holder);
}

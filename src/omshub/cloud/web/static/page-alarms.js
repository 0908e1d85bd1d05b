// Alarms: filtered by state, kind, severity, property and acknowledgement; each with what it means
// in words (a gateway that is down lists its silent meters: one alarm per cause), its subject by
// name, and an acknowledgement with a note (operators; who and when are kept, the act audited).
import { api, can, listAll } from "./api.js";
import { fmtNum, t, tn, tv, unitText } from "./i18n.js";
import { badge, busy, field, h, messageBox, pagedTable, timeEl } from "./ui.js";

// What an alarm means, in the console's language (the API's message is English and technical).
const ALARM_TEXT = {
  gateway_missed_contact: "The gateway did not get in touch at the expected time.",
  gateway_meters_silent: "The gateway calls in, but most of its meters are not heard (its reception: antenna, position, meter filter or radio).",
  gateway_seq_reset: "The gateway started counting its uploads anew (restarted or reset).",
  meter_silent: "The meter has not been heard for longer than expected.",
  meter_error: "The meter reports an error.",
  wrong_key: "The meter's telegrams cannot be decrypted with the stored key.",
  negative_consumption: "A register of the meter went backwards.",
};
const SEVERITY_TEXT = { critical: "critical", warning: "warning", info: "note" };
const SEVERITY_KIND = { critical: "bad", warning: "warn", info: "info" };

function severityBadge(level) {
  return badge(t(SEVERITY_TEXT[level] || level), SEVERITY_KIND[level] || "");
}

function subjectCell(s) {
  const gateway = s.type === "gateway";
  const link = h("a", { href: `#/${gateway ? "gateways" : "meters"}/${s.id}` },
    `${gateway ? t("Gateway") : t("Meter")} ${s.name || ""}`.trim());
  const point = s.metering_point;
  return [link, point ? h("div", { class: "muted" }, h("a", { href: `#/points/${point.id}` },
    point.address || point.ref)) : null];
}

// The alarm's meaning, with the facts of its details in words.
function meaning(a) {
  const d = a.details || {};
  const out = [h("div", {}, ALARM_TEXT[a.kind] ? t(ALARM_TEXT[a.kind]) : tv(a.kind))];
  const line = (text) => out.push(h("div", { class: "muted" }, text));
  if (a.kind === "gateway_missed_contact" || a.kind === "gateway_meters_silent") {
    if (d.expected_contact_at) line([t("Expected:") + " ", timeEl(d.expected_contact_at, false)]);
    if (a.kind === "gateway_missed_contact") line([t("Last contact:") + " ", timeEl(d.last_contact_at, false, t("never"))]);
    const n = d.silent_meter_count || 0;
    if (n) {
      const meters = (d.silent_meters || []).map((m) => h("li", {}, h("a", { href: `#/meters/${m.id}` }, m.meter)));
      out.push(h("details", { class: "grouped" },
        h("summary", {}, tn(n, "{n} meter of this gateway is not heard either (listed here, no alarm of its own).",
          "{n} meters of this gateway are not heard either (listed here, no alarm of their own).")),
        h("ul", { class: "meter-list" }, meters),
        meters.length < n ? h("p", { class: "muted" }, t("The first {shown} are listed.", { shown: fmtNum(meters.length) })) : null));
    }
  } else if (a.kind === "meter_silent") {
    line(d.last_heard_at ? [t("Last heard:") + " ", timeEl(d.last_heard_at, false)] : t("Never heard."));
  } else if (a.kind === "negative_consumption" && d.quantity) {
    line(t("{quantity} went from {before} to {after} {unit}.", { quantity: tv(d.quantity), before: fmtNum(d.previous_value),
      after: fmtNum(d.value), unit: unitText(d.unit) }));
  } else if (a.kind === "meter_error" && (d.status_flags || []).length) {
    line(d.status_flags.map((f) => tv(f)).join(", "));
  }
  return out;
}

// The acknowledgement: who, when and the note; or (operators, not yet acknowledged) a button that
// opens a small form for the note.
function ackCell(a, reload) {
  const cell = h("div", { class: "ack" });
  const show = (ack) => cell.replaceChildren(h("div", {}, badge(t("acknowledged"), "ok"), " ", ack.by, ", ",
    timeEl(ack.at, false)), h("div", { class: "ack-note" }, ack.note));
  if (a.acknowledged) {
    show(a.acknowledged);
    return cell;
  }
  if (!can("operator")) {
    cell.append(h("span", { class: "muted" }, t("not acknowledged")));
    return cell;
  }
  const open = h("button", { type: "button", class: "secondary" }, t("Acknowledge"));
  open.addEventListener("click", () => {
    const msg = messageBox();
    const note = h("textarea", { name: "note", rows: 2, maxlength: 1000, required: true });
    const save = h("button", { type: "submit" }, t("Acknowledge"));
    const cancel = h("button", { type: "button", class: "secondary" }, t("Cancel"));
    const form = h("form", { class: "ack-form" }, field(t("Note"), note, t("What is being done, or why it can wait.")),
      msg.el, h("div", { class: "actions" }, save, cancel));
    cancel.addEventListener("click", () => cell.replaceChildren(open));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      busy(save, msg, async () => {
        const done = await api("POST", `/alarms/${a.id}/acknowledge`, { body: { note: note.value } });
        show(done.acknowledged);
        if (reload) reload();
      });
    });
    cell.replaceChildren(form);
    note.focus();
  });
  cell.append(open);
  return cell;
}

function select(name, value, options) {
  return h("select", { name }, options.map(([v, l]) => h("option", { value: v, selected: v === value }, l)));
}

export function renderAlarms(main, _params, query) {
  document.title = t("Alarms — omshub console");
  const msg = messageBox();
  const q = (k, d = "") => query.get(k) || d;
  const show = select("show", q("show", "active"), [["active", t("Active")], ["cleared", t("Cleared")], ["all", t("All")]]);
  const kind = select("kind", q("kind"), [["", t("all kinds")], ...Object.keys(ALARM_TEXT).map((k) => [k, tv(k)])]);
  const severity = select("severity", q("severity"), [["", t("all severities")],
    ...Object.entries(SEVERITY_TEXT).map(([k, l]) => [k, t(l)])]);
  const ack = select("ack", q("ack"), [["", t("acknowledged or not")], ["no", t("not acknowledged")], ["yes", t("acknowledged")]]);
  const property = select("property", q("property"), [["", t("all properties")]]);
  const controls = [show, kind, severity, property, ack];
  const go = () => {
    const p = new URLSearchParams();
    for (const c of controls) if (c.value) p.set(c.name, c.value);
    location.hash = "#/alarms?" + p.toString();
  };
  for (const c of controls) c.addEventListener("change", go);
  // the properties to choose from (billing master data; none: the filter stays at "all")
  listAll("/properties", {}, 500).then((props) => {
    for (const p of props) property.append(h("option", { value: String(p.id), selected: String(p.id) === q("property") },
      p.name ? `${p.name} (${p.ref})` : p.ref));
  }).catch(() => { property.disabled = true; });
  const active = show.value === "all" ? undefined : show.value === "active";
  const filters = { active, kind: kind.value, severity: severity.value, property_id: q("property"),
    acknowledged: ack.value === "" ? undefined : ack.value === "yes" };
  main.append(h("h1", {}, t("Alarms")),
    h("p", { class: "muted" }, t("An alarm stays active until its cause goes away, and is kept afterwards. A gateway " +
      "that is down is one alarm listing its meters. Acknowledging says that someone takes care of it.")),
    h("form", { class: "inline-form filters", "aria-label": t("Filter alarms") },
      field(t("Show"), show), field(t("Kind"), kind), field(t("Severity"), severity), field(t("Property"), property),
      field(t("Acknowledgement"), ack)), msg.el,
    pagedTable([
      { label: t("Severity"), cell: (a) => severityBadge(a.severity) },
      { label: t("Raised"), cell: (a) => timeEl(a.raised_at, false) },
      { label: t("Kind"), cell: (a) => badge(tv(a.kind), a.active ? "bad" : "muted") },
      { label: t("Subject"), cell: (a) => subjectCell(a.subject) },
      { label: t("What it means"), cell: meaning },
      { label: t("Cleared"), cell: (a) => (a.cleared_at ? timeEl(a.cleared_at, false) : t("still active")) },
      { label: t("Acknowledgement"), cell: (a) => ackCell(a) },
    ], (cursor) => api("GET", "/alarms", { query: { ...filters, cursor, limit: 100 } }), msg,
    { empty: show.value === "active" ? t("No active alarms.") : t("No alarms.") }));
}

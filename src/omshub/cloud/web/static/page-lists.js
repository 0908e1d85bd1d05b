// Alarms (active / cleared) and operations lists.
import { api } from "./api.js";
import { t, tv } from "./i18n.js";
import { badge, field, h, messageBox, pagedTable, stateBadge, timeEl } from "./ui.js";

// An alarm's subject by the name people know it by (a gateway's serial, a meter's manufacturer
// and number), looked up once per subject; never a database id.
const names = new Map();
function subjectLink(s) {
  const path = s.type === "gateway" ? "gateways" : "meters";
  const link = h("a", { href: `#/${path}/${s.id}` }, s.type === "gateway" ? t("Gateway") : t("Meter"));
  const key = `${path}/${s.id}`;
  if (!names.has(key)) {
    names.set(key, api("GET", `/${path}/${s.id}`).then((o) => (s.type === "gateway" ? o.serial :
      `${o.manufacturer} ${o.meter_id}`)).catch(() => null));
  }
  names.get(key).then((name) => { if (name) link.textContent = `${link.textContent} ${name}`; });
  return link;
}

// What an alarm means, in the console's language (the API's message is English and technical).
const ALARM_TEXT = {
  gateway_missed_contact: "The gateway did not get in touch at the expected time.",
  gateway_seq_reset: "The gateway started counting its uploads anew (restarted or reset).",
  meter_silent: "The meter has not been heard for longer than expected.",
  meter_error: "The meter reports an error.",
  wrong_key: "The meter's telegrams cannot be decrypted with the stored key.",
  negative_consumption: "A register of the meter went backwards.",
};

export function renderAlarms(main, _params, query) {
  document.title = t("Alarms — omshub console");
  const msg = messageBox();
  const show = query.get("show") || "active";
  const select = h("select", { name: "show" },
    [["active", t("Active")], ["cleared", t("Cleared")], ["all", t("All")]].map(([v, l]) => h("option", { value: v, selected: v === show }, l)));
  const kind = query.get("kind") || "";
  const kinds = h("select", { name: "kind" }, h("option", { value: "" }, t("all kinds")),
    Object.keys(ALARM_TEXT).map((k) => h("option", { value: k, selected: k === kind }, tv(k))));
  const go = () => {
    location.hash = `#/alarms?show=${select.value}` + (kinds.value ? `&kind=${kinds.value}` : "");
  };
  select.addEventListener("change", go);
  kinds.addEventListener("change", go);
  const active = show === "all" ? undefined : show === "active";
  main.append(h("h1", {}, t("Alarms")),
    h("form", { class: "inline-form" }, field(t("Show"), select), field(t("Kind"), kinds)), msg.el,
    pagedTable([
      { label: t("Raised"), cell: (a) => timeEl(a.raised_at, false) },
      { label: t("Kind"), cell: (a) => badge(tv(a.kind), a.active ? "bad" : "muted") },
      { label: t("Subject"), cell: (a) => subjectLink(a.subject) },
      { label: t("Message"), cell: (a) => (ALARM_TEXT[a.kind] ? t(ALARM_TEXT[a.kind]) : tv(a.kind)) },
      { label: t("Cleared"), cell: (a) => (a.cleared_at ? timeEl(a.cleared_at, false) : t("still active")) },
    ], (cursor) => api("GET", "/alarms", { query: { active, kind, cursor, limit: 100 } }), msg,
    { empty: show === "active" ? t("No active alarms.") : t("No alarms.") }));
}

export function renderOperations(main, _params, query) {
  document.title = t("Operations — omshub console");
  const msg = messageBox();
  const state = query.get("state") || "";
  const select = h("select", { name: "state" }, h("option", { value: "" }, t("all states")),
    ["PENDING", "DELIVERED", "SUCCESSFUL", "FAILED", "SUPERSEDED"].map((s) => h("option", { value: s, selected: s === state }, tv(s))));
  select.addEventListener("change", () => { location.hash = "#/operations" + (select.value ? `?state=${select.value}` : ""); });
  main.append(h("h1", {}, t("Operations")), h("p", { class: "muted" },
    t("Each configuration change of a gateway is an operation: waiting until the gateway's next contact, sent when " +
      "it was delivered, applied when the gateway confirms it, refused when the gateway refuses it, replaced when a " +
      "newer change took its place.")),
  h("form", { class: "inline-form" }, field(t("State"), select)), msg.el,
  pagedTable([
    { label: t("Created"), cell: (o) => timeEl(o.created_at, false) },
    { label: t("Gateway"), cell: (o) => h("a", { href: `#/gateways/${o.gateway_id}` }, o.gateway || o.gateway_id) },
    { label: t("Version"), cell: (o) => t("version {v}", { v: o.config_version }) },
    { label: t("State"), cell: (o) => stateBadge(o.state) },
    { label: t("By"), cell: (o) => o.created_by || "" },
    { label: t("Delivered"), cell: (o) => timeEl(o.delivered_at, true, "—") },
    { label: t("Finished"), cell: (o) => timeEl(o.finished_at, true, "—") },
    { label: t("Error"), cell: (o) => (o.error ? t("The gateway refused the configuration.") : "") },
  ], (cursor) => api("GET", "/operations", { query: { state, cursor, limit: 100 } }), msg, { empty: t("No operations.") }));
}

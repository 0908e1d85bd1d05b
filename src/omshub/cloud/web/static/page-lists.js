// Alarms (active / cleared) and operations lists.
import { api } from "./api.js";
import { badge, field, h, messageBox, pagedTable, stateBadge, timeEl } from "./ui.js";

function subjectLink(s) {
  const path = s.type === "gateway" ? "gateways" : "meters";
  return h("a", { href: `#/${path}/${s.id}` }, `${s.type} ${s.id}`);
}

export function renderAlarms(main, _params, query) {
  document.title = "Alarms — omshub console";
  const msg = messageBox();
  const show = query.get("show") || "active";
  const select = h("select", { name: "show" },
    [["active", "Active"], ["cleared", "Cleared"], ["all", "All"]].map(([v, l]) => h("option", { value: v, selected: v === show }, l)));
  select.addEventListener("change", () => { location.hash = `#/alarms?show=${select.value}`; });
  const active = show === "all" ? undefined : show === "active";
  main.append(h("h1", {}, "Alarms"), h("form", { class: "inline-form" }, field("Show", select)), msg.el,
    pagedTable([
      { label: "Raised", cell: (a) => timeEl(a.raised_at, false) },
      { label: "Kind", cell: (a) => badge(a.kind.replaceAll("_", " "), a.active ? "bad" : "muted") },
      { label: "Subject", cell: (a) => subjectLink(a.subject) },
      { label: "Message", cell: (a) => a.message },
      { label: "Cleared", cell: (a) => (a.cleared_at ? timeEl(a.cleared_at, false) : "active") },
    ], (cursor) => api("GET", "/alarms", { query: { active, cursor, limit: 100 } }), msg,
    { empty: show === "active" ? "No active alarms." : "No alarms." }));
}

export function renderOperations(main, _params, query) {
  document.title = "Operations — omshub console";
  const msg = messageBox();
  const state = query.get("state") || "";
  const select = h("select", { name: "state" }, h("option", { value: "" }, "all states"),
    ["PENDING", "DELIVERED", "SUCCESSFUL", "FAILED", "SUPERSEDED"].map((s) => h("option", { value: s, selected: s === state }, s)));
  select.addEventListener("change", () => { location.hash = "#/operations" + (select.value ? `?state=${select.value}` : ""); });
  main.append(h("h1", {}, "Operations"), h("p", { class: "muted" },
    "Each configuration change of a gateway is an operation: PENDING until the gateway's next contact, DELIVERED when sent, " +
    "SUCCESSFUL when the gateway confirms it, FAILED when it refuses it, SUPERSEDED when a newer change replaced it."),
  h("form", { class: "inline-form" }, field("State", select)), msg.el,
  pagedTable([
    { label: "Created", cell: (o) => timeEl(o.created_at, false) },
    { label: "Gateway", cell: (o) => h("a", { href: `#/gateways/${o.gateway_id}` }, o.gateway || o.gateway_id) },
    { label: "Version", cell: (o) => `v${o.config_version}` },
    { label: "State", cell: (o) => stateBadge(o.state) },
    { label: "By", cell: (o) => o.created_by || "" },
    { label: "Delivered", cell: (o) => timeEl(o.delivered_at, true, "—") },
    { label: "Finished", cell: (o) => timeEl(o.finished_at, true, "—") },
    { label: "Error", cell: (o) => o.error || "" },
  ], (cursor) => api("GET", "/operations", { query: { state, cursor, limit: 100 } }), msg, { empty: "No operations." }));
}

// The operations list (alarms: page-alarms.js).
import { api } from "./api.js";
import { t, tv } from "./i18n.js";
import { field, h, messageBox, pagedTable, stateBadge, timeEl } from "./ui.js";

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

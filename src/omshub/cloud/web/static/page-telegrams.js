// Telegrams by state, and meters heard but not registered (with a register button).
import { api, can } from "./api.js";
import { t, tv } from "./i18n.js";
import { busy, field, fmtNum, h, messageBox, pagedTable, section, stateBadge, timeEl } from "./ui.js";

const STATES = ["new", "decoded", "no_key", "wrong_key", "unknown_meter", "invalid", "duplicate"];

export function render(main, _params, query) {
  document.title = t("Telegrams — omshub console");
  const msg = messageBox();
  const regMsg = messageBox();
  const state = query.get("state") || "";
  const select = h("select", { name: "state" }, h("option", { value: "" }, t("all states")),
    STATES.map((s) => h("option", { value: s, selected: s === state }, tv(s))));
  select.addEventListener("change", () => {
    location.hash = "#/telegrams" + (select.value ? `?state=${select.value}` : "");
  });
  const operator = can("operator");
  const unregistered = pagedTable([
    { label: t("Meter"), cell: (u) => `${u.manufacturer || ""} ${u.meter_id}`.trim() },
    { label: t("Type"), cell: (u) => tv(u.device_type) },
    { label: t("Last heard"), cell: (u) => timeEl(u.last_heard_at) },
    { label: t("Telegrams"), class: "num", cell: (u) => fmtNum(u.count) },
    { label: t("Heard by"), cell: (u) => u.gateways.map((g, i) => [i ? ", " : "", h("a", { href: `#/gateways/${g.id}` }, g.serial)]) },
    operator ? { label: h("span", { class: "sr-only" }, t("Actions")), cell: (u) => {
      const b = h("button", { type: "button", class: "small" }, t("Register"));
      b.addEventListener("click", () => busy(b, regMsg, async () => {
        const m = await api("POST", "/meters", { body: { manufacturer: u.manufacturer, meter_id: u.meter_id,
          device_type: u.device_type_code, gateway_id: u.gateways.length ? u.gateways[0].id : null } });
        b.replaceWith(h("a", { href: `#/meters/${m.id}` }, t("registered")));
        regMsg.ok(t("Meter {meter} registered; its telegrams are decoded now.", { meter: `${m.manufacturer} ${m.meter_id}` }));
      }));
      return b;
    } } : null,
  ].filter(Boolean), (cursor) => api("GET", "/telegrams/unregistered", { query: { cursor, limit: 100 } }), regMsg,
  { empty: t("Every meter heard is registered.") });

  main.append(h("h1", {}, t("Telegrams")),
    section(t("Meters heard but not registered"), regMsg.el, unregistered),
    section(t("Received telegrams"), h("form", { class: "inline-form" }, field(t("State"), select)), msg.el,
      pagedTable([
        { label: t("Received"), cell: (tg) => timeEl(tg.received_at, false) },
        { label: t("Gateway"), cell: (tg) => h("a", { href: `#/gateways/${tg.gateway_id}` }, tg.gateway || tg.gateway_id) },
        { label: t("Meter"), cell: (tg) => (tg.meter_pk ? h("a", { href: `#/meters/${tg.meter_pk}` }, `${tg.manufacturer} ${tg.meter_id}`) :
          (`${tg.manufacturer || ""} ${tg.meter_id || ""}`.trim() || t("unknown"))) },
        { label: t("Link"), cell: (tg) => tg.link_mode },
        { label: t("Signal"), class: "num", cell: (tg) => (tg.rssi === null ? "—" : `${fmtNum(tg.rssi)} dBm`) },
        { label: t("Bytes"), class: "num", cell: (tg) => fmtNum(tg.length) },
        { label: t("State"), cell: (tg) => stateBadge(tg.state) },
        { label: t("Error"), cell: (tg) => (tg.error ? t("The telegram could not be read.") : "") },
      ], (cursor) => api("GET", "/telegrams", { query: { state, cursor, limit: 100 } }), msg,
      { empty: t("No telegrams.") })));
}

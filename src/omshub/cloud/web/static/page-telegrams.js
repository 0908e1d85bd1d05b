// Telegrams by state, and meters heard but not registered (with a register button).
import { api, can } from "./api.js";
import { busy, field, fmtNum, h, messageBox, pagedTable, section, stateBadge, timeEl } from "./ui.js";

const STATES = ["new", "decoded", "no_key", "wrong_key", "unknown_meter", "invalid", "duplicate"];

export function render(main, _params, query) {
  document.title = "Telegrams — omshub console";
  const msg = messageBox();
  const regMsg = messageBox();
  const state = query.get("state") || "";
  const select = h("select", { name: "state" }, h("option", { value: "" }, "all states"),
    STATES.map((s) => h("option", { value: s, selected: s === state }, s.replaceAll("_", " "))));
  select.addEventListener("change", () => {
    location.hash = "#/telegrams" + (select.value ? `?state=${select.value}` : "");
  });
  const operator = can("operator");
  const unregistered = pagedTable([
    { label: "Meter", cell: (u) => `${u.manufacturer || "?"} ${u.meter_id}` },
    { label: "Type", cell: (u) => u.device_type || "—" },
    { label: "Last heard", cell: (u) => timeEl(u.last_heard_at) },
    { label: "Telegrams", class: "num", cell: (u) => fmtNum(u.count) },
    { label: "Heard by", cell: (u) => u.gateways.map((g, i) => [i ? ", " : "", h("a", { href: `#/gateways/${g.id}` }, g.serial)]) },
    operator ? { label: h("span", { class: "sr-only" }, "Actions"), cell: (u) => {
      const b = h("button", { type: "button", class: "small" }, "Register");
      b.addEventListener("click", () => busy(b, regMsg, async () => {
        const m = await api("POST", "/meters", { body: { manufacturer: u.manufacturer, meter_id: u.meter_id,
          device_type: u.device_type_code, gateway_id: u.gateways.length ? u.gateways[0].id : null } });
        b.replaceWith(h("a", { href: `#/meters/${m.id}` }, "registered"));
        regMsg.ok(`Meter ${m.manufacturer} ${m.meter_id} registered; its telegrams are decoded now.`);
      }));
      return b;
    } } : null,
  ].filter(Boolean), (cursor) => api("GET", "/telegrams/unregistered", { query: { cursor, limit: 100 } }), regMsg,
  { empty: "Every meter heard is registered." });

  main.append(h("h1", {}, "Telegrams"),
    section("Meters heard but not registered", regMsg.el, unregistered),
    section("Received telegrams", h("form", { class: "inline-form" }, field("State", select)), msg.el,
      pagedTable([
        { label: "Received", cell: (t) => timeEl(t.received_at, false) },
        { label: "Gateway", cell: (t) => h("a", { href: `#/gateways/${t.gateway_id}` }, t.gateway || t.gateway_id) },
        { label: "Meter", cell: (t) => (t.meter_pk ? h("a", { href: `#/meters/${t.meter_pk}` }, `${t.manufacturer} ${t.meter_id}`) :
          `${t.manufacturer || "?"} ${t.meter_id || "?"}`) },
        { label: "Link", cell: (t) => t.link_mode },
        { label: "Signal", class: "num", cell: (t) => (t.rssi === null ? "—" : `${t.rssi} dBm`) },
        { label: "Bytes", class: "num", cell: (t) => h("span", { title: t.hex, class: "mono" }, t.length) },
        { label: "State", cell: (t) => stateBadge(t.state) },
        { label: "Error", cell: (t) => t.error || "" },
      ], (cursor) => api("GET", "/telegrams", { query: { state, cursor, limit: 100 } }), msg,
      { empty: "No telegrams." })));
}

// Dashboard: counts, gateways not heard on time, meters heard but not registered.
import { api } from "./api.js";
import { t, tv } from "./i18n.js";
import { badge, fmtNum, h, messageBox, section, stateBadge, table, timeEl } from "./ui.js";
import { fleetChart } from "./page-charts.js";

function stat(label, value, href, kind = "") {
  const body = [h("span", { class: "stat-value" }, fmtNum(value)), h("span", { class: "stat-label" }, label)];
  return href ? h("a", { class: `stat ${kind}`.trim(), href }, body) : h("div", { class: `stat ${kind}`.trim() }, body);
}

export function render(main) {
  document.title = t("Dashboard — omshub console");
  const msg = messageBox();
  const stats = h("div", { class: "stats", "aria-live": "polite" });
  const states = h("div");
  const late = h("div");
  const unreg = h("div");
  main.append(h("h1", {}, t("Dashboard")), msg.el, stats,
    h("div", { class: "grid2" },
      section(t("Gateways not heard on time"), late),
      section(t("Meters heard but not registered"), unreg)),
    section(t("Telegrams by state"), states), fleetChart());

  (async () => {
    try {
      const [sum, unregistered] = await Promise.all([
        api("GET", "/console/summary"),
        api("GET", "/telegrams/unregistered", { query: { limit: 10 } }),
      ]);
      stats.append(
        stat(t("Gateways"), sum.gateways, "#/gateways"),
        stat(t("Meters"), sum.meters, "#/meters"),
        stat(t("Metering points"), sum.metering_points, "#/points"),
        stat(t("Telegrams"), sum.telegrams.total, "#/telegrams"),
        stat(t("Active alarms"), sum.alarms.active, "#/alarms", sum.alarms.active ? "bad" : "ok"),
        stat(t("Open operations"), sum.operations.open, "#/operations", sum.operations.open ? "warn" : ""),
        stat(t("Late gateways"), sum.gateways_late.length, null, sum.gateways_late.length ? "bad" : "ok"),
        stat(t("Unregistered meters"), sum.meters_unregistered, "#/telegrams", sum.meters_unregistered ? "warn" : ""));
      const byState = Object.entries(sum.telegrams.by_state).sort((a, b) => b[1] - a[1]);
      states.append(table([
        { label: t("State"), cell: ([s]) => h("a", { href: `#/telegrams?state=${s}` }, stateBadge(s)) },
        { label: t("Telegrams"), class: "num", cell: ([, n]) => fmtNum(n) },
      ], byState, { empty: t("No telegrams received yet.") }));
      late.append(table([
        { label: t("Gateway"), cell: (g) => h("a", { href: `#/gateways/${g.id}` }, g.serial) },
        { label: t("Name"), cell: (g) => g.name || "" },
        { label: t("Expected contact"), cell: (g) => timeEl(g.expected_contact_at) },
        { label: t("Last contact"), cell: (g) => timeEl(g.last_contact_at) },
      ], sum.gateways_late, { empty: t("Every gateway reported on time.") }));
      if (sum.gateways_late_more) late.append(h("p", { class: "muted" }, t("Only the 50 latest are listed.")));
      unreg.append(table([
        { label: t("Meter"), cell: (u) => `${u.manufacturer || ""} ${u.meter_id}`.trim() },
        { label: t("Type"), cell: (u) => tv(u.device_type) },
        { label: t("Last heard"), cell: (u) => timeEl(u.last_heard_at) },
        { label: t("Telegrams"), class: "num", cell: (u) => fmtNum(u.count) },
      ], unregistered.items, { empty: t("Every meter heard is registered.") }));
      if (unregistered.items.length) unreg.append(h("p", {}, h("a", { href: "#/telegrams" }, t("Register them on the Telegrams page"))));
      if (sum.alarms.active) {
        stats.after(h("p", { class: "muted" }, t("Active alarms:") + " ",
          Object.entries(sum.alarms.by_kind).map(([k, n]) => [badge(`${tv(k)}: ${fmtNum(n)}`, "bad"), " "])));
      }
    } catch (err) {
      msg.error(err.message);
    }
  })();
}

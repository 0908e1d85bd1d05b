// The charts of the meter, metering point, gateway and dashboard pages (figures from
// /api/v1/charts, drawn by charts.js). Each returns its sections at once and fills them when the
// figures arrive; without a range the API shows the last 30 days (12 months; the fleet: 14 days) up
// to the latest data.
import { api } from "./api.js";
import { t, tv } from "./i18n.js";
import { barChart, describeRange, lineChart } from "./charts.js";
import { field, h, messageBox, section } from "./ui.js";

const PERIODS = { day: "per day (30 days)", month: "per month (12 months)" };
// decode states in a fixed order and colour (the stacked bars of the dashboard)
const STATE_ORDER = ["decoded", "new", "no_key", "wrong_key", "unknown_meter", "invalid", "duplicate"];

function empty(text) {
  return h("p", { class: "muted empty" }, text);
}

// A "per day / per month" switch and the bars of consumption from `path`.
function consumptionChart(path, what) {
  const msg = messageBox();
  const box = h("div", { "aria-live": "polite" });
  const period = h("select", { name: "chart-period" },
    Object.entries(PERIODS).map(([v, l]) => h("option", { value: v }, t(l))));
  async function load() {
    msg.hide();
    try {
      const c = await api("GET", path, { query: { period: period.value } });
      // the days (months) before the first figure are left out: a new meter's chart starts with it
      const first = c.buckets.findIndex((b) => b.value !== null);
      const shown = first < 0 ? [] : c.buckets.slice(first);
      const labels = shown.map((b) => b.date);
      const values = shown.map((b) => b.value);
      if (!c.quantity || !shown.length) {
        box.replaceChildren(empty(t("No consumption to show: there are no readings in this period.")));
        return;
      }
      const title = t("{what}: {quantity} per {period}", { what, quantity: tv(c.quantity),
        period: period.value === "month" ? t("month") : t("day") });
      box.replaceChildren(barChart({ title, unit: c.unit, period: c.period, labels,
        desc: describeRange(labels, values, c.unit, c.period),
        series: [{ name: tv(c.quantity), values }],
        faint: shown.map((b) => b.value !== null && !b.complete) }),
      h("p", { class: "muted" }, t("Lighter bars: not complete (a reading is missing near the start or end, or the " +
        "period is still running).")));
    } catch (err) {
      msg.error(err.message);
    }
  }
  period.addEventListener("change", load);
  load();
  return [h("form", { class: "inline-form" }, field(t("Show"), period)), msg.el, box];
}

const points = (at, values) => at.map((x, i) => [new Date(x), values[i]]);

export function meterCharts(id) {
  const regs = h("div", { "aria-live": "polite" });
  const temps = h("div");
  const msg = messageBox();
  (async () => {
    try {
      const c = await api("GET", `/charts/meters/${id}/series`);
      const cumulative = ["energy", "volume", "hca"].filter((q) => c.series[q]);
      regs.replaceChildren(...(cumulative.length ? cumulative.map((q) => lineChart({
        title: t("{quantity} over time", { quantity: tv(q) }), unit: c.units[q],
        desc: t("The meter's register as read, {n} readings.", { n: c.at.length }),
        series: [{ name: tv(q), points: points(c.at, c.series[q]) }], narrow: true })) :
        [empty(t("No readings to show."))]));
      const tq = ["flow_temperature", "return_temperature"].filter((q) => c.series[q]);
      temps.replaceChildren(tq.length ? lineChart({ title: t("Temperatures"), unit: "°C",
        desc: t("Flow and return temperature as read, {n} readings.", { n: c.at.length }),
        series: tq.map((q, k) => ({ name: tv(q), cls: k ? "s3" : "s1", points: points(c.at, c.series[q]) })),
        narrow: true }) :
        empty(t("This meter reports no temperatures.")));
    } catch (err) {
      msg.error(err.message);
    }
  })();
  return [section(t("Consumption"), consumptionChart(`/charts/meters/${id}/consumption`, t("Meter"))),
    h("div", { class: "grid2" }, section(t("Registers over time"), msg.el, regs), section(t("Temperatures"), temps))];
}

export function pointCharts(id) {
  return section(t("Consumption per day or month"),
    consumptionChart(`/charts/metering-points/${id}/consumption`, t("Metering point")));
}

export function gatewayCharts(id) {
  const contacts = h("div", { "aria-live": "polite" });
  const battery = h("div");
  const msg = messageBox();
  (async () => {
    try {
      const c = await api("GET", `/charts/gateways/${id}/history`);
      if (!c.contacts.length) {
        contacts.replaceChildren(empty(t("No contact to show.")));
      } else {
        contacts.replaceChildren(lineChart({ title: t("Contacts: telegrams per upload"), unit: "",
          desc: t("{n} uploads; each point is one contact and the telegrams it brought.", { n: c.contacts.length }),
          series: [{ name: t("Telegrams"), points: c.contacts.map((x) => [new Date(x.at), x.telegrams]) }], narrow: true,
          integer: true }));
      }
      battery.replaceChildren(c.battery_pct.length ? lineChart({ title: t("Battery"), unit: "%",
        desc: t("The battery level the gateway reported with its uploads."),
        series: [{ name: t("Battery"), cls: "s2", points: c.battery_pct.map((x) => [new Date(x.at), x.value]) }],
        narrow: true }) :
        empty(t("The gateway reported no battery level.")));
    } catch (err) {
      msg.error(err.message);
    }
  })();
  return h("div", { class: "grid2" }, section(t("Contact history"), msg.el, contacts), section(t("Battery history"), battery));
}

export function fleetChart() {
  const box = h("div", { "aria-live": "polite" });
  const msg = messageBox();
  (async () => {
    try {
      const c = await api("GET", "/charts/telegrams");
      const labels = c.days.map((d) => d.date);
      const states = [...STATE_ORDER.filter((x) => c.states.includes(x)), ...c.states.filter((x) => !STATE_ORDER.includes(x))];
      if (!states.length) {
        box.replaceChildren(empty(t("No telegrams to show.")));
        return;
      }
      const series = states.map((st) => ({ name: tv(st), cls: `st-${st}`, values: c.days.map((d) => d.counts[st] || 0) }));
      const totals = labels.map((_, i) => series.reduce((a, x) => a + x.values[i], 0));
      box.replaceChildren(barChart({ title: t("Telegrams received per day, by state"), unit: "", period: "day", labels,
        desc: describeRange(labels, totals, "", "day"), series, integer: true, legend: true }));
    } catch (err) {
      msg.error(err.message);
    }
  })();
  return section(t("Telegrams over time"), msg.el, box);
}

// Global search (meters by number, metering points by address or customer reference, gateways by
// serial) and the export of readings (the API's /export/readings, downloaded as a file).
import { api } from "./api.js";
import { t, tv } from "./i18n.js";
import { field, h, messageBox, section, table } from "./ui.js";

export function renderSearch(main, _params, query) {
  document.title = t("Search — omshub console");
  const q = query.get("q") || "";
  const msg = messageBox();
  const input = h("input", { type: "search", name: "q", value: q, autocomplete: "off",
    placeholder: t("e.g. 3100, KAM 31000001, Hauptstraße, K-4711, GW-12") });
  const form = h("form", { class: "inline-form", role: "search" }, field(t("Find"), input,
    t("A meter number or its beginning, an address, a customer reference, a metering point or a gateway serial")),
  h("button", { type: "submit" }, t("Start the search")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = "#/search?q=" + encodeURIComponent(input.value.trim());
  });
  const results = h("div", { id: "search-results", "aria-live": "polite" });
  main.append(h("h1", {}, t("Search")), msg.el, form, results);
  input.focus();
  if (!q.trim()) return;
  api("GET", "/search", { query: { q } }).then((r) => {
    const none = !r.meters.length && !r.points.length && !r.gateways.length;
    if (none) {
      results.append(h("p", { class: "muted empty" }, t("Nothing found for “{q}”.", { q })));
      return;
    }
    if (r.meters.length) {
      results.append(section(t("Meters"), table([
        { label: t("Meter"), cell: (m) => h("a", { href: `#/meters/${m.id}` }, `${m.manufacturer} ${m.meter_id}`) },
        { label: t("Type"), cell: (m) => tv(m.device_type) },
        { label: t("Metering point"), cell: (m) => (m.metering_point ?
          h("a", { href: `#/points/${m.metering_point.id}` }, m.metering_point.ref) : "—") },
      ], r.meters)));
    }
    if (r.points.length) {
      results.append(section(t("Metering points"), table([
        { label: t("Metering point"), cell: (p) => h("a", { href: `#/points/${p.id}` }, p.ref) },
        { label: t("Address"), cell: (p) => p.address || "—" },
        { label: t("Customer reference"), cell: (p) => p.customer_ref || "—" },
      ], r.points)));
    }
    if (r.gateways.length) {
      results.append(section(t("Gateways"), table([
        { label: t("Gateway"), cell: (g) => h("a", { href: `#/gateways/${g.id}` }, g.serial) },
        { label: t("Name"), cell: (g) => g.name || "—" },
      ], r.gateways)));
    }
  }).catch((err) => msg.error(err.message));
}

function day(offsetMonths, date = new Date()) {
  const d = new Date(date.getFullYear(), date.getMonth() + offsetMonths, 1);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

// a local calendar day -> the instant it starts, as the API wants it (with its zone)
function dayStart(value) {
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d).toISOString();
}

export function renderExport(main) {
  document.title = t("Export — omshub console");
  const msg = messageBox();
  const from = h("input", { type: "date", name: "from", required: true, value: day(-1) });
  const to = h("input", { type: "date", name: "to", required: true, value: day(0) });
  const scope = h("input", { name: "meter", autocomplete: "off", placeholder: t("e.g. KAM 31000001") });
  const format = h("select", { name: "format" },
    h("option", { value: "csv" }, t("CSV (spreadsheet)")), h("option", { value: "json" }, "JSON"));
  const submit = h("button", { type: "submit" }, t("Download"));
  const link = h("a", { hidden: true, id: "export-link" });
  const form = h("form", {}, msg.el,
    h("div", { class: "row" }, field(t("From (start of day)"), from), field(t("To (start of day)"), to)),
    h("div", { class: "row" }, field(t("Meter (optional)"), scope, t("Empty: the readings of every meter")),
      field(t("Format"), format)), submit, link);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    msg.hide();
    if (!from.value || !to.value || to.value <= from.value) {
      msg.error(t("Choose a period: the day “to” must come after the day “from”."));
      (to.value ? from : to).focus();
      return;
    }
    const params = new URLSearchParams({ from: dayStart(from.value), to: dayStart(to.value), format: format.value });
    if (scope.value.trim()) {
      try {
        const found = await api("GET", "/search", { query: { q: scope.value.trim() } });
        if (found.meters.length !== 1) {
          msg.error(found.meters.length ? t("Several meters match “{q}”; give the whole meter number.",
            { q: scope.value.trim() }) : t("No meter “{q}” found.", { q: scope.value.trim() }));
          scope.focus();
          return;
        }
        params.set("meter", found.meters[0].id);
      } catch (err) {
        msg.error(err.message);
        return;
      }
    }
    // the browser downloads the file itself (the session cookie goes along), no copy in the page
    link.href = "/api/v1/export/readings?" + params;
    link.setAttribute("download", "");
    link.click();
    msg.ok(t("The download has started."));
  });
  main.append(h("h1", {}, t("Export readings")),
    h("p", { class: "muted" }, t("All readings received in the period, one line per reading and value, for a " +
      "spreadsheet or a billing system.")), section(t("Period, scope and format"), form));
}

// Gateways: list with status, register, a gateway's page with its configuration form and the
// operations that deliver it, and one configuration applied to a selection of gateways.
import { api, can } from "./api.js";
import { t, tn } from "./i18n.js";
import { configForm, describePatch } from "./config-form.js";
import { badge, busy, field, fmtNum, h, messageBox, pagedTable, section, stateBadge, table, timeEl } from "./ui.js";
import { gatewayCharts } from "./page-charts.js";

const OPEN = new Set(["PENDING", "DELIVERED"]);
const POLL_MS = 2000;

function configCell(g) {
  if (g.desired_config_version > g.applied_config_version) {
    return h("span", {}, t("version {a} → {d}", { a: g.applied_config_version, d: g.desired_config_version }) + " ",
      badge(t("waiting"), "warn"));
  }
  return h("span", {}, t("version {v}", { v: g.applied_config_version }) + " ", badge(t("applied"), "ok"));
}

function nextContactCell(g) {
  if (!g.next_contact_at) return h("span", { class: "muted" }, "—");
  const late = new Date(g.next_contact_at).getTime() < Date.now() - 30 * 60 * 1000;
  return h("span", {}, timeEl(g.next_contact_at), late ? [" ", badge(t("late"), "bad")] : null);
}

function battery(g) {
  if (g.battery_pct !== null && g.battery_pct !== undefined) return `${fmtNum(g.battery_pct)} %`;
  if (g.battery_mv) return `${fmtNum(g.battery_mv / 1000, 2)} V`;
  return "—";
}

function spool(g) {
  if (g.spool === null || g.spool === undefined) return "—";
  return h("span", {}, fmtNum(g.spool), g.spool_full ? [" ", badge(t("full"), "bad")] : null);
}

export function renderList(main) {
  document.title = t("Gateways — omshub console");
  const msg = messageBox();
  const operator = can("operator");
  const selected = new Set();
  const applySelected = h("button", { type: "button", disabled: true, id: "configure-selected" },
    t("Configure selected gateways"));
  applySelected.addEventListener("click", () => {
    location.hash = `#/gateways/bulk?ids=${[...selected].join(",")}`;
  });
  function select(id, on) {
    if (on) selected.add(id);
    else selected.delete(id);
    applySelected.disabled = selected.size === 0;
    applySelected.textContent = selected.size ? tn(selected.size, "Configure the selected gateway",
      "Configure the {n} selected gateways") : t("Configure selected gateways");
  }
  // select all gateways shown (the filter narrows what is shown)
  const all = h("input", { type: "checkbox", id: "select-all", "aria-label": t("Select all gateways shown") });
  const shownBoxes = () => [...main.querySelectorAll(".select-gw")].filter((b) => !b.closest("tr").hidden);
  all.addEventListener("change", () => {
    for (const box of shownBoxes()) {
      box.checked = all.checked;
      select(Number(box.value), all.checked);
    }
  });
  const filter = h("input", { type: "search", name: "filter", autocomplete: "off",
    placeholder: t("part of the serial or name") });
  function applyFilter() {
    const text = filter.value.trim().toLowerCase();
    for (const row of main.querySelectorAll("tbody tr")) {
      row.hidden = !!text && !row.textContent.toLowerCase().includes(text);
    }
  }
  filter.addEventListener("input", () => {
    applyFilter();
    all.checked = false;
  });
  const columns = [
    operator ? { label: all, cell: (g) => h("input", {
      type: "checkbox", "aria-label": t("Select {serial}", { serial: g.serial }), class: "select-gw", value: g.id,
      onchange: (ev) => select(g.id, ev.target.checked) }) } : null,
    { label: t("Gateway"), cell: (g) => h("a", { href: `#/gateways/${g.id}` }, g.serial) },
    { label: t("Name"), cell: (g) => g.name || "" },
    { label: t("Last contact"), cell: (g) => timeEl(g.last_contact_at) },
    { label: t("Battery"), class: "num", cell: battery },
    { label: t("Signal"), class: "num", cell: (g) => (g.rssi === null || g.rssi === undefined ? "—" : `${fmtNum(g.rssi)} dBm`) },
    { label: t("Firmware"), cell: (g) => g.firmware || "—" },
    { label: t("Spool"), class: "num", cell: spool },
    { label: t("Configuration"), cell: configCell },
    { label: t("Next contact"), cell: nextContactCell },
  ].filter(Boolean);
  main.append(h("div", { class: "page-head" }, h("h1", {}, t("Gateways")), operator ? applySelected : null), msg.el,
    h("form", { class: "inline-form", role: "search", onsubmit: (ev) => ev.preventDefault() },
      field(t("Filter the list"), filter)),
    pagedTable(columns, (cursor) => api("GET", "/gateways", { query: { cursor, limit: 100 } }), msg,
      { empty: t("No gateways registered yet."), onLoad: applyFilter }));
  if (operator) main.append(registerForm());
}

function registerForm() {
  const msg = messageBox();
  const serial = h("input", { name: "serial", required: true, autocomplete: "off" });
  const name = h("input", { name: "name", autocomplete: "off" });
  const submit = h("button", { type: "submit" }, t("Register gateway"));
  const result = h("div");
  const form = h("form", { class: "inline-form" }, msg.el, field(t("Serial number"), serial), field(t("Name (optional)"), name),
    submit);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(submit, msg, async () => {
      const g = await api("POST", "/gateways", { body: { serial: serial.value.trim(), name: name.value.trim() } });
      form.reset();
      result.replaceChildren(h("div", { class: "message ok", role: "status" },
        h("p", {}, t("Gateway") + " ", h("a", { href: `#/gateways/${g.id}` }, g.serial), " " + t("registered. Its credential is shown") + " ",
          h("strong", {}, t("only now")), " " + t("— enter it in the gateway's settings:")),
        h("p", {}, h("code", { class: "secret" }, g.credential))));
    });
  });
  return section(t("Register a gateway"), form, result);
}

function statusList(g) {
  const dl = h("dl", { class: "facts" });
  const rows = [
    [t("Last contact"), timeEl(g.last_contact_at)],
    [t("Next expected contact"), nextContactCell(g)],
    [t("Battery"), battery(g)],
    [t("Signal"), g.rssi === null || g.rssi === undefined ? "—" : `${fmtNum(g.rssi)} dBm`],
    [t("Firmware"), g.firmware || "—"],
    [t("Telegrams waiting on the gateway (as of its last contact)"), spool(g)],
    [t("Configuration"), configCell(g)],
    [t("Registered"), timeEl(g.created_at, false)],
  ];
  for (const [k, v] of rows) dl.append(h("dt", {}, k), h("dd", {}, v));
  return dl;
}

function opsTable(ops) {
  return table([
    { label: t("Version"), cell: (o) => t("version {v}", { v: o.config_version }) },
    { label: t("State"), cell: (o) => stateBadge(o.state) },
    { label: t("Created"), cell: (o) => h("span", {}, timeEl(o.created_at), o.created_by ? " " + t("by {who}", { who: o.created_by }) : "") },
    { label: t("Delivered"), cell: (o) => timeEl(o.delivered_at, true, "—") },
    { label: t("Finished"), cell: (o) => timeEl(o.finished_at, true, "—") },
    { label: t("Details"), cell: (o) => (o.error ? t("The gateway refused the configuration.") : "") ||
      (OPEN.has(o.state) && o.expected_contact_at ?
        h("span", {}, t("next contact expected") + " ", timeEl(o.expected_contact_at)) : "") },
  ], ops, { empty: t("No configuration changes yet.") });
}

// The line that tells the operator where the latest change stands.
function changeStatus(op, g) {
  if (!op) return h("p", { class: "muted" }, t("The gateway runs its factory configuration; no change was made yet."));
  const text = {
    PENDING: t("is waiting for the gateway's next contact"),
    DELIVERED: t("was sent to the gateway; waiting for it to confirm"),
    SUCCESSFUL: t("is applied by the gateway"),
    FAILED: t("was refused by the gateway"),
    SUPERSEDED: t("was replaced by a newer change"),
  }[op.state] || "";
  return h("p", { class: "change-status" }, t("Configuration version {v}", { v: op.config_version }) + " ", text, " ",
    stateBadge(op.state),
    OPEN.has(op.state) && (op.expected_contact_at || g.next_contact_at) ?
      h("span", { class: "muted" }, " — " + t("next contact expected") + " ",
        timeEl(op.expected_contact_at || g.next_contact_at)) : null,
    op.error ? h("span", { class: "error-text" }, " — " + t("The gateway refused the configuration.")) : null);
}

function shownText(cfg) {
  return cfg.factory_default ? t("Showing the factory configuration (no version set yet).") :
    t("Showing the desired configuration, version {v}.", { v: cfg.version });
}

export function renderGateway(main, [id]) {
  const operator = can("operator");
  const msg = messageBox();
  const title = h("h1", {}, t("Gateway"));
  const status = h("div");
  const changeBox = h("div", { id: "config-status", "aria-live": "polite" });
  const changeNearForm = h("div", { class: "change-inline" });
  const opsBox = h("div");
  const formBox = h("div");
  const formMsg = messageBox();
  formMsg.el.id = "config-message";
  let timer = null;
  let stopped = false;
  let latest = 0;

  // The poll's refresh and the form's may overlap: only the one started last is shown (an older
  // answer arriving later would put back an outdated state); a superseded one returns false,
  // polling is left to the newer one.
  async function refresh() {
    const mine = ++latest;
    const [g, ops] = await Promise.all([api("GET", `/gateways/${id}`),
      api("GET", "/operations", { query: { gateway_id: id, limit: 10 } })]);
    if (mine !== latest) return false;
    title.textContent = g.name ? t("Gateway {serial} — {name}", { serial: g.serial, name: g.name }) :
      t("Gateway {serial}", { serial: g.serial });
    document.title = t("{name} — omshub console", { name: g.serial });
    status.replaceChildren(statusList(g));
    changeBox.replaceChildren(changeStatus(ops.items[0], g));
    changeNearForm.replaceChildren(changeStatus(ops.items[0], g));
    opsBox.replaceChildren(opsTable(ops.items));
    return ops.items.some((o) => OPEN.has(o.state));
  }

  function poll() {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      if (stopped) return;
      try {
        if (await refresh()) poll();
      } catch (err) {
        msg.error(err.message);
        poll();
      }
    }, POLL_MS);
  }

  main.append(title, msg.el,
    h("div", { class: "grid2" }, section(t("Status"), status), section(t("Configuration changes"), changeBox, opsBox)),
    gatewayCharts(id),
    section(t("Configuration"), formBox));

  (async () => {
    try {
      const [open, cfg] = await Promise.all([refresh(), api("GET", `/gateways/${id}/config`)]);
      if (open) poll();
      const form = configForm(cfg.config, { readOnly: !operator, gatewayId: Number(id) });
      const apply = h("button", { type: "submit", id: "apply-config" }, t("Apply configuration"));
      const shown = h("p", { class: "muted", id: "config-shown" }, shownText(cfg));
      const f = h("form", { novalidate: true, "aria-describedby": "config-message" },
        shown, form.el, formMsg.el, operator ? h("div", { class: "actions" }, apply,
          h("span", { class: "muted" }, t("Only the settings you change are sent; the gateway picks the change up " +
            "at its next contact."))) :
          h("p", { class: "muted" }, t("You have read-only access.")), changeNearForm);
      f.addEventListener("submit", (ev) => {
        ev.preventDefault();
        if (!operator) return;
        busy(apply, formMsg, async () => {
          const res = await api("PATCH", `/gateways/${id}/config`,
            { body: JSON.stringify(form.patch()), contentType: "application/merge-patch+json" });
          if (res.outcome === "unchanged") {
            formMsg.ok(t("Nothing to change: configuration version {v} already has these settings.", { v: res.config_version }));
          } else {
            const replaced = res.superseded_operations.length ?
              " " + t("It replaces the change that was not applied yet (its settings are included).") : "";
            formMsg.ok(t("Saved as configuration version {v}.", { v: res.config_version }) + replaced + " " +
              t("It is delivered when the gateway next gets in touch; its state is shown here until it is applied."));
          }
          // the head-end's result: the change merged onto the gateway's configuration
          form.rebase(res.config);
          shown.textContent = shownText({ version: res.config_version, factory_default: false });
          if (await refresh()) poll();
        });
      });
      formBox.replaceChildren(f);
    } catch (err) {
      msg.error(err.message);
    }
  })();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

const OUTCOME_TEXT = {
  created: (r) => t("new configuration version {v}", { v: r.config_version }),
  superseded: (r) => t("new configuration version {v}; it replaces the change that was not applied yet, whose " +
    "settings it includes", { v: r.config_version }),
  skipped: (r) => t("skipped: keeps its pending change (version {v})", { v: r.config_version }),
  unchanged: (r) => t("nothing to change (version {v} already has these settings)", { v: r.config_version }),
};

function conflictsTable(conflicts) {
  return table([
    { label: t("Gateway"), cell: (c) => h("a", { href: `#/gateways/${c.gateway_id}` }, c.gateway) },
    { label: t("Pending change"), cell: (c) => h("span", {}, t("version {v}", { v: c.config_version }) + " ", stateBadge(c.state)) },
    { label: t("What it changes"), cell: (c) => (c.changes === null ? "—" :
      h("ul", { class: "changes" }, describePatch(c.changes).map((line) => h("li", {}, line)))) },
    { label: t("Asked by"), cell: (c) => c.created_by || "—" },
    { label: t("When"), cell: (c) => timeEl(c.created_at) },
  ], conflicts);
}

export function renderBulk(main, _params, query) {
  document.title = t("Configure gateways — omshub console");
  const ids = (query.get("ids") || "").split(",").filter((x) => /^\d+$/.test(x)).map(Number);
  const msg = messageBox();
  const formMsg = messageBox();
  const conflictBox = h("div", { id: "bulk-conflicts", "aria-live": "polite" });
  const result = h("div", { id: "bulk-result", "aria-live": "polite" });
  const formBox = h("div");
  let timer = null;
  let stopped = false;
  let watched = null;
  main.append(h("h1", {}, tn(ids.length, "Configure one gateway", "Configure {n} gateways")), msg.el, formBox,
    conflictBox, result);
  if (!ids.length) {
    msg.error(t("No gateways selected. Select them in the gateway list first."));
    return undefined;
  }
  if (!can("operator")) {
    msg.error(t("You have read-only access."));
    return undefined;
  }

  // Shows (and polls) the states of the latest submission only: a poll of an earlier one that is
  // in flight when the form is submitted again stops instead of running alongside.
  async function showResults(results) {
    const opIds = results.map((r) => r.operation_id).filter((o) => o !== null);
    const ops = new Map((await Promise.all(opIds.map((o) => api("GET", `/operations/${o}`)))).map((o) => [o.id, o]));
    if (results !== watched) return;
    result.replaceChildren(section(t("Result"), table([
      { label: t("Gateway"), cell: (r) => h("a", { href: `#/gateways/${r.gateway_id}` }, r.gateway || r.gateway_id) },
      { label: t("What happened"), cell: (r) => h("span", { "data-outcome": r.outcome }, OUTCOME_TEXT[r.outcome](r)) },
      { label: t("State"), cell: (r) => (ops.has(r.operation_id) ? stateBadge(ops.get(r.operation_id).state) : "—") },
      { label: t("Details"), cell: (r) => (ops.has(r.operation_id) && ops.get(r.operation_id).error) || "" },
    ], results)));
    if ([...ops.values()].some((o) => OPEN.has(o.state)) && !stopped) {
      timer = setTimeout(() => showResults(results), POLL_MS * 2);
    }
  }

  (async () => {
    try {
      const gws = await Promise.all(ids.map((i) => api("GET", `/gateways/${i}`)));
      const first = await api("GET", `/gateways/${ids[0]}/config`);
      const form = configForm(first.config);
      const apply = h("button", { type: "submit" }, tn(ids.length, "Apply to one gateway", "Apply to {n} gateways"));
      const f = h("form", { novalidate: true },
        h("p", {}, t("Gateways:") + " ", gws.map((g, i) => [i ? ", " : "", h("a", { href: `#/gateways/${g.id}` }, g.serial)])),
        h("p", { class: "muted" }, t("The form shows the configuration of {serial}. Only the settings you change " +
          "are sent: every gateway keeps its other settings (its own time zone, schedules and meters).",
        { serial: gws[0].serial })),
        formMsg.el, form.el, h("div", { class: "actions" }, apply));

      // Sends the change; a gateway with a change not applied yet makes the head-end refuse it
      // (nothing changed) until the operator decides: replace those changes, or skip those gateways.
      async function send(patch, onConflict) {
        conflictBox.replaceChildren();
        const body = { config: patch, gateway_ids: ids };
        if (onConflict) body.on_conflict = onConflict;
        let res;
        try {
          res = await api("POST", "/gateways/config", { body });
        } catch (err) {
          if (err.status === 409 && err.code === "pending_changes") {
            showConflicts(err.details.conflicts || []);
            return;
          }
          throw err;
        }
        const n = (o) => res.results.filter((r) => r.outcome === o).length;
        formMsg.ok(t("{count} changes created ({superseded} of them replace a pending change), {skipped} gateways " +
          "skipped, {unchanged} unchanged. Each gateway picks its change up at its next contact.",
        { count: fmtNum(res.count), superseded: fmtNum(n("superseded")), skipped: fmtNum(n("skipped")),
          unchanged: fmtNum(n("unchanged")) }));
        clearTimeout(timer);
        watched = res.results;
        await showResults(watched);
      }

      function showConflicts(conflicts) {
        formMsg.hide();
        const decide = (choice, label, cls) => {
          const b = h("button", { type: "button", class: cls }, label);
          // what the form shows now is what is sent
          b.addEventListener("click", () => busy(b, formMsg, () => send(form.patch(), choice)));
          return b;
        };
        conflictBox.replaceChildren(section(t("Changes not applied yet"),
          h("p", { class: "message warn", role: "alert" }, t("{n} of the selected gateways have a change that is not " +
            "applied yet. Nothing was changed. Decide what happens to them:", { n: fmtNum(conflicts.length) })),
          conflictsTable(conflicts),
          h("div", { class: "actions" },
            decide("supersede", t("Replace their pending changes"), ""),
            decide("skip", t("Skip these gateways"), "secondary"),
            h("span", { class: "muted" }, t("Replacing keeps their pending settings and adds yours; skipping leaves " +
              "those gateways as they are and changes the others.")))));
      }

      f.addEventListener("submit", (ev) => {
        ev.preventDefault();
        busy(apply, formMsg, () => send(form.patch(), null));
      });
      formBox.replaceChildren(f);
    } catch (err) {
      msg.error(err.message);
    }
  })();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

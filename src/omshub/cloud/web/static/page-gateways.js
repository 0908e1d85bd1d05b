// Gateways: list with status, register, a gateway's page with its configuration form and the
// operations that deliver it, and one configuration applied to a selection of gateways.
import { api, can } from "./api.js";
import { configForm, describePatch } from "./config-form.js";
import { badge, busy, field, fmtNum, h, messageBox, pagedTable, section, stateBadge, table, timeEl } from "./ui.js";

const OPEN = new Set(["PENDING", "DELIVERED"]);
const POLL_MS = 2000;

function configCell(g) {
  if (g.desired_config_version > g.applied_config_version) {
    return h("span", {}, `v${g.applied_config_version} → v${g.desired_config_version} `, badge("waiting", "warn"));
  }
  return h("span", {}, `v${g.applied_config_version} `, badge("applied", "ok"));
}

function nextContactCell(g) {
  if (!g.next_contact_at) return h("span", { class: "muted" }, "—");
  const late = new Date(g.next_contact_at).getTime() < Date.now() - 30 * 60 * 1000;
  return h("span", {}, timeEl(g.next_contact_at), late ? [" ", badge("late", "bad")] : null);
}

function battery(g) {
  if (g.battery_pct !== null && g.battery_pct !== undefined) return `${g.battery_pct} %`;
  if (g.battery_mv) return `${(g.battery_mv / 1000).toFixed(2)} V`;
  return "—";
}

function spool(g) {
  if (g.spool === null || g.spool === undefined) return "—";
  return h("span", {}, fmtNum(g.spool), g.spool_full ? [" ", badge("full", "bad")] : null);
}

export function renderList(main) {
  document.title = "Gateways — omshub console";
  const msg = messageBox();
  const operator = can("operator");
  const selected = new Set();
  const applySelected = h("button", { type: "button", disabled: true, id: "configure-selected" },
    "Configure selected gateways");
  applySelected.addEventListener("click", () => {
    location.hash = `#/gateways/bulk?ids=${[...selected].join(",")}`;
  });
  function select(id, on) {
    if (on) selected.add(id);
    else selected.delete(id);
    applySelected.disabled = selected.size === 0;
    applySelected.textContent = selected.size ? `Configure ${selected.size} selected gateway(s)` :
      "Configure selected gateways";
  }
  const columns = [
    operator ? { label: h("span", { class: "sr-only" }, "Select"), cell: (g) => h("input", {
      type: "checkbox", "aria-label": `Select ${g.serial}`, class: "select-gw", value: g.id,
      onchange: (ev) => select(g.id, ev.target.checked) }) } : null,
    { label: "Gateway", cell: (g) => h("a", { href: `#/gateways/${g.id}` }, g.serial) },
    { label: "Name", cell: (g) => g.name || "" },
    { label: "Last contact", cell: (g) => timeEl(g.last_contact_at) },
    { label: "Battery", class: "num", cell: battery },
    { label: "Signal", class: "num", cell: (g) => (g.rssi === null || g.rssi === undefined ? "—" : `${g.rssi} dBm`) },
    { label: "Firmware", cell: (g) => g.firmware || "—" },
    { label: "Spool", class: "num", cell: spool },
    { label: "Configuration", cell: configCell },
    { label: "Next contact", cell: nextContactCell },
  ].filter(Boolean);
  main.append(h("div", { class: "page-head" }, h("h1", {}, "Gateways"), operator ? applySelected : null), msg.el,
    pagedTable(columns, (cursor) => api("GET", "/gateways", { query: { cursor, limit: 100 } }), msg,
      { empty: "No gateways registered yet." }));
  if (operator) main.append(registerForm());
}

function registerForm() {
  const msg = messageBox();
  const serial = h("input", { name: "serial", required: true, autocomplete: "off" });
  const name = h("input", { name: "name", autocomplete: "off" });
  const submit = h("button", { type: "submit" }, "Register gateway");
  const result = h("div");
  const form = h("form", { class: "inline-form" }, field("Serial number", serial), field("Name (optional)", name),
    submit);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(submit, msg, async () => {
      const g = await api("POST", "/gateways", { body: { serial: serial.value.trim(), name: name.value.trim() } });
      form.reset();
      result.replaceChildren(h("div", { class: "message ok", role: "status" },
        h("p", {}, "Gateway ", h("a", { href: `#/gateways/${g.id}` }, g.serial), " registered. Its credential is shown ",
          h("strong", {}, "only now"), " — enter it in the gateway's settings:"),
        h("p", {}, h("code", { class: "secret" }, g.credential))));
    });
  });
  return section("Register a gateway", form, msg.el, result);
}

function statusList(g) {
  const dl = h("dl", { class: "facts" });
  const rows = [
    ["Last contact", timeEl(g.last_contact_at)],
    ["Next expected contact", nextContactCell(g)],
    ["Battery", battery(g)],
    ["Signal", g.rssi === null || g.rssi === undefined ? "—" : `${g.rssi} dBm`],
    ["Firmware", g.firmware || "—"],
    ["Telegrams waiting on the gateway", spool(g)],
    ["Configuration", configCell(g)],
    ["Registered", timeEl(g.created_at, false)],
  ];
  for (const [k, v] of rows) dl.append(h("dt", {}, k), h("dd", {}, v));
  return dl;
}

function opsTable(ops) {
  return table([
    { label: "Version", cell: (o) => `v${o.config_version}` },
    { label: "State", cell: (o) => stateBadge(o.state) },
    { label: "Created", cell: (o) => h("span", {}, timeEl(o.created_at), o.created_by ? ` by ${o.created_by}` : "") },
    { label: "Delivered", cell: (o) => timeEl(o.delivered_at, true, "—") },
    { label: "Finished", cell: (o) => timeEl(o.finished_at, true, "—") },
    { label: "Details", cell: (o) => o.error || (OPEN.has(o.state) && o.expected_contact_at ?
      h("span", {}, "next contact expected ", timeEl(o.expected_contact_at)) : "") },
  ], ops, { empty: "No configuration changes yet." });
}

// The line that tells the operator where the latest change stands.
function changeStatus(op, g) {
  if (!op) return h("p", { class: "muted" }, "The gateway runs its factory configuration; no change was made yet.");
  const text = {
    PENDING: "is waiting for the gateway's next contact",
    DELIVERED: "was sent to the gateway; waiting for it to confirm",
    SUCCESSFUL: "is applied by the gateway",
    FAILED: "was refused by the gateway",
    SUPERSEDED: "was replaced by a newer change",
  }[op.state] || "";
  return h("p", { class: "change-status" }, `Configuration version ${op.config_version} `, text, " ",
    stateBadge(op.state),
    OPEN.has(op.state) && (op.expected_contact_at || g.next_contact_at) ?
      h("span", { class: "muted" }, " — next contact expected ", timeEl(op.expected_contact_at || g.next_contact_at)) : null,
    op.error ? h("span", { class: "error-text" }, ` — ${op.error}`) : null);
}

function shownText(cfg) {
  return cfg.factory_default ? "Showing the factory configuration (no version set yet)." :
    `Showing the desired configuration, version ${cfg.version}.`;
}

export function renderGateway(main, [id]) {
  const operator = can("operator");
  const msg = messageBox();
  const title = h("h1", {}, "Gateway");
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
    title.textContent = g.name ? `Gateway ${g.serial} — ${g.name}` : `Gateway ${g.serial}`;
    document.title = `${g.serial} — omshub console`;
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
    h("div", { class: "grid2" }, section("Status", status), section("Configuration changes", changeBox, opsBox)),
    section("Configuration", formBox));

  (async () => {
    try {
      const [open, cfg] = await Promise.all([refresh(), api("GET", `/gateways/${id}/config`)]);
      if (open) poll();
      const form = configForm(cfg.config, { readOnly: !operator, gatewayId: Number(id) });
      const apply = h("button", { type: "submit", id: "apply-config" }, "Apply configuration");
      const shown = h("p", { class: "muted", id: "config-shown" }, shownText(cfg));
      const f = h("form", { novalidate: true, "aria-describedby": "config-message" },
        shown, form.el, formMsg.el, operator ? h("div", { class: "actions" }, apply,
          h("span", { class: "muted" }, "Only the settings you change are sent; the gateway picks the change up " +
            "at its next contact.")) :
          h("p", { class: "muted" }, "You have read-only access."), changeNearForm);
      f.addEventListener("submit", (ev) => {
        ev.preventDefault();
        if (!operator) return;
        busy(apply, formMsg, async () => {
          const res = await api("PATCH", `/gateways/${id}/config`,
            { body: JSON.stringify(form.patch()), contentType: "application/merge-patch+json" });
          if (res.outcome === "unchanged") {
            formMsg.ok(`Nothing to change: configuration version ${res.config_version} already has these settings.`);
          } else {
            const replaced = res.superseded_operations.length ?
              " It replaces the change that was not applied yet (its settings are included)." : "";
            formMsg.ok(`Saved as configuration version ${res.config_version}.${replaced} ` +
              "It is delivered when the gateway next gets in touch; its state is shown here until it is applied.");
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
  created: (r) => `new configuration version ${r.config_version}`,
  superseded: (r) => `new configuration version ${r.config_version}; it replaces the change that was not applied ` +
    `yet (operation ${r.superseded_operations.join(", ")}), whose settings it includes`,
  skipped: (r) => `skipped: keeps its pending change (version ${r.config_version})`,
  unchanged: (r) => `nothing to change (version ${r.config_version} already has these settings)`,
};

function conflictsTable(conflicts) {
  return table([
    { label: "Gateway", cell: (c) => h("a", { href: `#/gateways/${c.gateway_id}` }, c.gateway) },
    { label: "Pending change", cell: (c) => h("span", {}, `v${c.config_version} `, stateBadge(c.state)) },
    { label: "What it changes", cell: (c) => (c.changes === null ? "—" :
      h("ul", { class: "changes" }, describePatch(c.changes).map((line) => h("li", { class: "mono" }, line)))) },
    { label: "Asked by", cell: (c) => c.created_by || "—" },
    { label: "When", cell: (c) => timeEl(c.created_at) },
  ], conflicts);
}

export function renderBulk(main, _params, query) {
  document.title = "Configure gateways — omshub console";
  const ids = (query.get("ids") || "").split(",").filter((x) => /^\d+$/.test(x)).map(Number);
  const msg = messageBox();
  const formMsg = messageBox();
  const conflictBox = h("div", { id: "bulk-conflicts", "aria-live": "polite" });
  const result = h("div", { id: "bulk-result", "aria-live": "polite" });
  const formBox = h("div");
  let timer = null;
  let stopped = false;
  let watched = null;
  main.append(h("h1", {}, `Configure ${ids.length} gateway(s)`), msg.el, formBox, conflictBox, result);
  if (!ids.length) {
    msg.error("No gateways selected. Select them in the gateway list first.");
    return undefined;
  }
  if (!can("operator")) {
    msg.error("You have read-only access.");
    return undefined;
  }

  // Shows (and polls) the states of the latest submission only: a poll of an earlier one that is
  // in flight when the form is submitted again stops instead of running alongside.
  async function showResults(results) {
    const opIds = results.map((r) => r.operation_id).filter((o) => o !== null);
    const ops = new Map((await Promise.all(opIds.map((o) => api("GET", `/operations/${o}`)))).map((o) => [o.id, o]));
    if (results !== watched) return;
    result.replaceChildren(section("Result", table([
      { label: "Gateway", cell: (r) => h("a", { href: `#/gateways/${r.gateway_id}` }, r.gateway || r.gateway_id) },
      { label: "What happened", cell: (r) => h("span", { "data-outcome": r.outcome }, OUTCOME_TEXT[r.outcome](r)) },
      { label: "State", cell: (r) => (ops.has(r.operation_id) ? stateBadge(ops.get(r.operation_id).state) : "—") },
      { label: "Details", cell: (r) => (ops.has(r.operation_id) && ops.get(r.operation_id).error) || "" },
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
      const apply = h("button", { type: "submit" }, `Apply to ${ids.length} gateway(s)`);
      const f = h("form", { novalidate: true },
        h("p", {}, "Gateways: ", gws.map((g, i) => [i ? ", " : "", h("a", { href: `#/gateways/${g.id}` }, g.serial)])),
        h("p", { class: "muted" }, `The form shows the configuration of ${gws[0].serial}. Only the settings you ` +
          "change are sent: every gateway keeps its other settings (its own time zone, schedules and meters)."),
        form.el, formMsg.el, h("div", { class: "actions" }, apply));

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
        formMsg.ok(`${res.count} operation(s) created (${n("superseded")} of them replace a pending change), ` +
          `${n("skipped")} gateway(s) skipped, ${n("unchanged")} unchanged. ` +
          "Each gateway picks its change up at its next contact.");
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
        conflictBox.replaceChildren(section("Changes not applied yet",
          h("p", { class: "message warn", role: "alert" }, `${conflicts.length} of the selected gateway(s) have a ` +
            "change that is not applied yet. Nothing was changed. Decide what happens to them:"),
          conflictsTable(conflicts),
          h("div", { class: "actions" },
            decide("supersede", "Replace their pending changes", ""),
            decide("skip", "Skip these gateways", "secondary"),
            h("span", { class: "muted" }, "Replacing keeps their pending settings and adds yours; skipping leaves " +
              "those gateways as they are and changes the others."))));
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

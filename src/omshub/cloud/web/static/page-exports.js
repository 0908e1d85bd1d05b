// Billing exports (docs/exports.md): export a period now, scheduled SFTP jobs with their run history
// and files, webhook endpoints with a test event, dead letters and replay.
import { api, can } from "./api.js";
import { t, tv } from "./i18n.js";
import { badge, busy, field, h, messageBox, section, table, timeEl } from "./ui.js";

const FORMATS = [["v1-csv", "Reading export v1 (CSV)"], ["v1-json", "Reading export v1 (JSON)"],
  ["sap-csv", "SAP IS-U upload (CSV)"], ["sap-json", "SAP IS-U upload (JSON)"]];
const STATE_KIND = { ok: "ok", delivered: "ok", empty: "", running: "warn", pending: "warn", failed: "bad", dead: "bad" };

// a list fetched for a section: its error in the section's message box
async function fetching(msg, fn) {
  try {
    return await fn();
  } catch (err) {
    msg.error(err.message);
    return undefined;
  }
}

function formatSelect() {
  return h("select", { name: "format" }, FORMATS.map(([v, label]) => h("option", { value: v }, t(label))));
}

function lastMonth() {
  const d = new Date();
  d.setDate(0);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}`;
}

function fileLink(run) {
  if (!run.size) return "—";
  return h("a", { href: `/api/v1/exports/runs/${run.id}/file`, download: run.file_name }, t("Download"));
}

function runsTable(items) {
  return table([
    { label: t("Export"), cell: (r) => r.export_id },
    { label: t("Started"), cell: (r) => timeEl(r.started_at, false) },
    { label: t("Format"), cell: (r) => r.format },
    { label: t("Period"), cell: (r) => r.scope.period },
    { label: t("State"), cell: (r) => badge(tv(r.state), STATE_KIND[r.state] || "") },
    { label: t("Rows"), class: "num", cell: (r) => String(r.rows) },
    { label: t("Target or error"), cell: (r) => r.error || r.target || "—" },
    { label: t("File"), cell: fileLink },
  ], items, { empty: t("No export yet.") });
}

function exportNow(reloadRuns) {
  const msg = messageBox();
  const format = formatSelect();
  const period = h("input", { name: "period", required: true, value: lastMonth(), pattern: "\\d{4}-\\d{2}|year:\\d{4}",
    placeholder: "2026-11" });
  const mode = h("select", { name: "mode" }, h("option", { value: "all" }, t("every row")),
    h("option", { value: "changes" }, t("only rows new or changed since the last export")));
  const submit = h("button", { type: "submit" }, t("Export now"));
  const form = h("form", {}, msg.el, h("div", { class: "row" }, field(t("Format"), format),
    field(t("Period"), period, t("a month like 2026-11, or a billing year like year:2026")), field(t("Rows"), mode)), submit);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(submit, msg, async () => {
      const out = await api("POST", "/exports", { body: { format: format.value, period: period.value.trim(), mode: mode.value } });
      msg.ok(t("Export {id}: {rows} rows.", { id: out.export_id, rows: out.rows }));
      reloadRuns();
    });
  });
  return section(t("Export a period now"), form);
}

function jobForm(reload) {
  const msg = messageBox();
  const inputs = {
    name: h("input", { name: "name", required: true, maxlength: 100 }),
    format: formatSelect(),
    scope: h("input", { name: "scope", value: "previous_month", required: true }),
    cron: h("input", { name: "cron", value: "0 6 2 * *", required: true }),
    timezone: h("input", { name: "timezone", value: "Europe/Berlin", required: true }),
    host: h("input", { name: "host", required: true }),
    port: h("input", { name: "port", type: "number", value: "22", min: 1, max: 65535 }),
    username: h("input", { name: "username", required: true }),
    directory: h("input", { name: "directory", value: "." }),
    private_key: h("textarea", { name: "private_key", rows: 4, required: true }),
    host_key: h("input", { name: "host_key" }),
  };
  const submit = h("button", { type: "submit" }, t("Create job"));
  const form = h("form", {}, msg.el,
    h("div", { class: "row" }, field(t("Name"), inputs.name), field(t("Format"), inputs.format),
      field(t("Period"), inputs.scope, t("previous_month, or a period like 2026-11"))),
    h("div", { class: "row" }, field(t("Schedule (cron)"), inputs.cron, t("minute hour day month weekday, e.g. 0 6 2 * *")),
      field(t("Time zone"), inputs.timezone)),
    h("div", { class: "row" }, field(t("SFTP server"), inputs.host), field(t("Port"), inputs.port),
      field(t("User"), inputs.username), field(t("Directory"), inputs.directory)),
    field(t("Private key"), inputs.private_key, t("OpenSSH or PEM, without passphrase; kept encrypted and never shown again")),
    field(t("Host key of the server"), inputs.host_key, t("Empty: the key the server shows first is kept")), submit);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const body = Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim()]));
    body.port = Number(body.port || 22);
    body.private_key = inputs.private_key.value;
    busy(submit, msg, async () => {
      await api("POST", "/export-jobs", { body });
      msg.ok(t("Job created."));
      form.reset();
      reload();
    });
  });
  return form;
}

function jobsSection(reloadRuns) {
  const msg = messageBox();
  const holder = h("div");
  const reload = async () => {
    const jobs = await fetching(msg, () => api("GET", "/export-jobs"));
    if (!jobs) return;
    holder.replaceChildren(table([
      { label: t("Name"), cell: (j) => j.name },
      { label: t("Format"), cell: (j) => j.format },
      { label: t("Period"), cell: (j) => j.scope },
      { label: t("Schedule (cron)"), cell: (j) => `${j.cron} (${j.timezone})` },
      { label: t("Target"), cell: (j) => `${j.username}@${j.host}:${j.port}/${j.directory}` },
      { label: t("Next run"), cell: (j) => timeEl(j.next_run_at, false) },
      { label: t("Run now"), cell: (j) => runButton(j, msg, reloadRuns) },
    ], jobs.items, { empty: t("No export job yet.") }));
  };
  reload();
  return section(t("Scheduled SFTP delivery"), msg.el, holder,
    can("admin") ? h("details", {}, h("summary", {}, t("New export job")), jobForm(reload)) : "");
}

function runButton(job, msg, reloadRuns) {
  if (!can("operator")) return "—";
  const button = h("button", { type: "button", class: "secondary" }, t("Run now"));
  button.addEventListener("click", () => busy(button, msg, async () => {
    const out = await api("POST", `/export-jobs/${job.id}/run`);
    if (out.state === "failed") msg.error(t("The run failed: {error}", { error: out.error }));
    else msg.ok(t("Run {state}: {rows} rows.", { state: tv(out.state), rows: out.rows }));
    reloadRuns();
  }));
  return button;
}

function webhookSection() {
  const msg = messageBox();
  const holder = h("div");
  const dead = h("div");
  const reload = async () => {
    const [eps, letters] = await fetching(msg, () => Promise.all([api("GET", "/webhooks"),
      api("GET", "/webhooks/deliveries", { query: { state: "dead" } })])) || [];
    if (!eps) return;
    holder.replaceChildren(table([
      { label: t("Address"), cell: (e) => e.url },
      { label: t("Events"), cell: (e) => (e.events.length ? e.events.join(", ") : t("all")) },
      { label: t("Retried for"), class: "num", cell: (e) => t("{h} h", { h: Math.round(e.retry_for_s / 360) / 10 }) },
      { label: t("Actions"), cell: (e) => endpointActions(e, msg, reload) },
    ], eps.items, { empty: t("No webhook yet.") }));
    dead.replaceChildren(table([
      { label: t("Event"), cell: (d) => `${tv(d.type)} (evt_${d.event_id})` },
      { label: t("Attempts"), class: "num", cell: (d) => String(d.attempts) },
      { label: t("Last attempt"), cell: (d) => timeEl(d.last_at, false) },
      { label: t("Last error"), cell: (d) => d.last_error || "—" },
      { label: t("Replay"), cell: (d) => replayButton(d, msg, reload) },
    ], letters.items, { empty: t("No dead letters.") }));
  };
  reload();
  return section(t("Webhooks"),
    h("p", { class: "muted" }, t("Events are sent as JSON, signed with HMAC-SHA256 (docs/exports.md), retried with backoff, then kept as dead letters.")),
    msg.el, holder, can("admin") ? h("details", {}, h("summary", {}, t("New webhook")), webhookForm(reload)) : "",
    h("h3", {}, t("Dead letters")), dead);
}

function endpointActions(ep, msg, reload) {
  if (!can("operator")) return "—";
  const test = h("button", { type: "button", class: "secondary" }, t("Send test event"));
  test.addEventListener("click", () => busy(test, msg, async () => {
    await api("POST", `/webhooks/${ep.id}/test`);
    msg.ok(t("Test event queued: it is sent within a few seconds."));
  }));
  const remove = h("button", { type: "button", class: "secondary" }, t("Delete"));
  remove.addEventListener("click", () => busy(remove, msg, async () => {
    await api("DELETE", `/webhooks/${ep.id}`);
    reload();
  }));
  return h("div", { class: "inline-form" }, test, can("admin") ? remove : "");
}

function replayButton(delivery, msg, reload) {
  if (!can("operator")) return "—";
  const button = h("button", { type: "button", class: "secondary" }, t("Send again"));
  button.addEventListener("click", () => busy(button, msg, async () => {
    await api("POST", `/webhooks/${delivery.endpoint_id}/replay`, { body: { delivery_ids: [delivery.id] } });
    msg.ok(t("Sent again within a few seconds."));
    reload();
  }));
  return button;
}

function webhookForm(reload) {
  const msg = messageBox();
  const url = h("input", { name: "url", type: "url", required: true, placeholder: t("address of your receiver") });
  const events = h("input", { name: "events", placeholder: "period.closed, value.changed_after_export" });
  const hours = h("input", { name: "retry_for_s", type: "number", min: 1, max: 720, value: "24" });
  const submit = h("button", { type: "submit" }, t("Create webhook"));
  const secret = h("p", { hidden: true });
  const form = h("form", {}, msg.el, h("div", { class: "row" }, field(t("Address"), url),
    field(t("Events"), events, t("Empty: every event; else separated by commas")), field(t("Retry for (hours)"), hours)),
  submit, secret);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const list = events.value.split(",").map((s) => s.trim()).filter(Boolean);
    busy(submit, msg, async () => {
      const out = await api("POST", "/webhooks",
        { body: { url: url.value.trim(), events: list, retry_for_s: Math.round(Number(hours.value || 24) * 3600) } });
      secret.hidden = false;
      secret.replaceChildren(t("Secret (shown only now, keep it for the signature check):"), " ", h("code", {}, out.secret));
      reload();
    });
  });
  return form;
}

export function renderExports(main) {
  document.title = t("Billing exports — omshub console");
  const runsHolder = h("div");
  const runsMsg = messageBox();
  const reloadRuns = async () => {
    const runs = await fetching(runsMsg, () => api("GET", "/exports/runs", { query: { limit: 50 } }));
    if (runs) runsHolder.replaceChildren(runsTable(runs.items));
  };
  main.append(h("h1", {}, t("Billing exports")),
    h("p", { class: "muted" }, t("Boundary values and consumption for billing systems: the reading export v1 and the SAP IS-U upload, by SFTP or webhook.")),
    can("operator") ? exportNow(reloadRuns) : "", jobsSection(reloadRuns), webhookSection(),
    section(t("Export history"), runsMsg.el, runsHolder));
  reloadRuns();
}

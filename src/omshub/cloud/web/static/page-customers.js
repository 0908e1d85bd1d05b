// Customer information (docs/customer-information.md, docs/console.md): a month's run (start it, the
// progress counts, completeness per property with its reasons, sending a notice again), the occupants'
// portal invitations, and the tenant's settings (supplier, SMTP, e-mail content, annual blocks).
import { api, can } from "./api.js";
import { fmtDate, fmtNum, t, tv } from "./i18n.js";
import { settingsSection } from "./page-customer-settings.js";
import { badge, busy, field, h, messageBox, pagedTable, section, showFieldErrors, table, timeEl } from "./ui.js";

const MONTH = /^\d{4}-(0[1-9]|1[0-2])$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const STATE_KIND = { sent: "ok", pending: "warn", failed: "bad", none: "muted", invited: "info", expired: "warn",
  active: "ok", locked: "muted" };

function lastMonth() {
  const d = new Date();
  d.setDate(0);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}`;
}

function noticeState(code) {
  return { pending: t("waiting"), sent: t("sent"), failed: t("failed") }[code] || "—";
}

function channelText(code) {
  return { email: t("e-mail"), post: t("letter"), portal: t("portal") }[code] || "—";
}

function invitationText(code) {
  return { none: t("not invited"), invited: t("invited"), expired: t("invitation expired"), active: t("active"),
    locked: t("locked") }[code] || code;
}

// "no_data:heat" -> "no readings (heat)"
function reasonText(reason) {
  const [code, line] = reason.split(":");
  const text = { no_data: t("no readings"), estimated: t("estimated value"), no_meter: t("no meter"),
    no_contact: t("no address"), email_failed: t("e-mail failed"), not_sent_yet: t("not sent yet"),
    sent_late: t("sent after the deadline") }[code] || code;
  return line ? `${text} (${tv(line)})` : text;
}

function stat(value, label, kind = "") {
  return h("div", { class: `stat ${kind}`.trim() }, h("span", { class: "stat-value" }, value),
    h("span", { class: "stat-label" }, label));
}

function summaryStats(sum) {
  const mail = sum.notices.email || {};
  const post = sum.notices.post || {};
  return [
    stat(`${fmtNum(sum.complete_records)} / ${fmtNum(sum.records)}`, t("records with complete values"),
      sum.records && sum.complete_records === sum.records ? "ok" : "warn"),
    stat(fmtNum(mail.sent || 0), t("e-mails sent"), mail.sent ? "ok" : ""),
    stat(fmtNum(mail.pending || 0), t("e-mails waiting"), mail.pending ? "warn" : ""),
    stat(fmtNum(mail.failed || 0), t("e-mails failed"), mail.failed ? "bad" : ""),
    stat(fmtNum(post.sent || 0), t("letters printed"), post.sent ? "ok" : ""),
    stat(fmtNum(post.pending || 0), t("letters to print"), post.pending ? "warn" : ""),
  ];
}

// the mail server's answer as it came (technical), shortened; all of it in the tooltip
function errorCell(u) {
  if (!u.last_error) return "—";
  const text = u.last_error.length > 60 ? u.last_error.slice(0, 57) + "…" : u.last_error;
  return h("code", { title: u.last_error, class: "small" }, text);
}

function resendButton(u, msg, reload) {
  if (!can("operator") || u.channel !== "email" || !u.delivery_id || u.state === "sent") return "—";
  const button = h("button", { type: "button", class: "secondary" }, t("Send again"));
  button.addEventListener("click", () => busy(button, msg, async () => {
    await api("POST", `/customer-info/deliveries/${u.delivery_id}/resend`);
    msg.ok(t("The notice to {name} is sent again within a few seconds.", { name: u.occupant }));
    reload();
  }));
  return button;
}

function completenessView(report, msg, reload) {
  const lastDay = fmtDate(new Date(Date.parse(report.deadline) - 1000).toISOString());
  const head = h("p", {}, t("Deadline: end of {day}.", { day: lastDay }), " ",
    t("{complete} of {all} occupants received complete information.",
      { complete: fmtNum(report.complete), all: fmtNum(report.occupants) }), " ",
    report.alarm ? badge(t("Deadline near: occupants missing"), "bad") : "");
  const reasons = Object.entries(report.reasons);
  const summary = reasons.length ? h("p", { class: "muted" }, t("Why not:") + " " +
    reasons.map(([code, n]) => `${reasonText(code)}: ${fmtNum(n)}`).join(", ")) : "";
  const props = report.properties.map((p) => h("details", { open: p.missing > 0 },
    h("summary", {}, `${p.name} — `, t("{complete} complete, {missing} missing",
      { complete: fmtNum(p.complete), missing: fmtNum(p.missing) })),
    table([
      { label: t("Unit"), cell: (u) => u.unit_ref },
      { label: t("Occupant"), cell: (u) => u.occupant },
      { label: t("Channel"), cell: (u) => channelText(u.channel) },
      { label: t("Notice"), cell: (u) => (u.state ? badge(noticeState(u.state), STATE_KIND[u.state]) : "—") },
      { label: t("Sent"), cell: (u) => timeEl(u.sent_at, false) },
      { label: t("Complete"), cell: (u) => (u.complete ? badge(t("yes"), "ok") : badge(t("no"), "bad")) },
      { label: t("Why not"), cell: (u) => u.reasons.map(reasonText).join(", ") || "—" },
      { label: t("Last error"), cell: errorCell },
      { label: t("Action"), cell: (u) => resendButton(u, msg, reload) },
    ], p.units, { empty: t("No occupant in this month.") })));
  return [head, summary, ...props];
}

function runSection(month) {
  const msg = messageBox();
  const stats = h("div", { class: "stats", "aria-live": "polite" });
  const next = h("p", { class: "muted" });
  const report = h("div");
  let timer = null;
  const reload = async () => {
    try {
      const [sum, rep] = await Promise.all([api("GET", "/customer-info/summary", { query: { month } }),
        api("GET", "/customer-info/completeness", { query: { month } })]);
      stats.replaceChildren(...summaryStats(sum));
      next.replaceChildren(sum.next_attempt_at ? t("Next e-mail attempt:") + " " : "",
        sum.next_attempt_at ? timeEl(sum.next_attempt_at, false) : "");
      report.replaceChildren(...(sum.records ? completenessView(rep, msg, reload)
        : [h("p", { class: "muted" }, t("This month has not been started yet."))]));
      clearTimeout(timer);
      // while e-mails wait, the counts follow the background sender
      if ((sum.notices.email || {}).pending) timer = setTimeout(reload, 5000);
    } catch (err) {
      msg.error(err.message);
    }
  };
  const input = h("input", { name: "month", required: true, value: month, placeholder: "2026-11", size: 8,
    inputmode: "numeric" });
  const show = h("button", { type: "submit", class: "secondary" }, t("Show"));
  const start = h("button", { type: "button" }, t("Start the month"));
  const form = h("form", { class: "inline-form" }, field(t("Month"), input, t("a closed month like 2026-11")), show,
    can("operator") ? start : "");
  const checked = () => {
    showFieldErrors(form, null);
    const value = input.value.trim();
    if (MONTH.test(value)) return value;
    showFieldErrors(form, { details: { fields: [{ field: "month", message: t("Write the month as year-month, e.g. 2026-11.") }] } });
    input.focus();
    return null;
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = checked();
    if (value) location.hash = `#/customers?month=${value}`;
  });
  start.addEventListener("click", () => {
    const value = checked();
    if (!value) return;
    busy(start, msg, async () => {
      const out = await api("POST", "/customer-info/runs", { body: { month: value } });
      const r = out.records;
      const p = out.deliveries_planned;
      msg.ok(t("{month}: {new} new and {changed} changed records, {unchanged} unchanged; {emails} e-mails, {letters} letters and {corrections} corrections planned.",
        { month: out.month, new: fmtNum(r.new), changed: fmtNum(r.changed), unchanged: fmtNum(r.unchanged),
          emails: fmtNum(p.email), letters: fmtNum(p.post), corrections: fmtNum(p.corrections) }));
      if (value !== month) location.hash = `#/customers?month=${value}`;
      else reload();
    });
  });
  reload();
  const el = section(t("Monthly run"),
    h("p", { class: "muted" }, t("Starting a month computes its records and plans a notice for every occupant. E-mails go out in the background and are retried while the mail server is unreachable; letters are printed with “omshub customers monthly”. Starting again sends nothing twice.")),
    form, msg.el, stats, next, h("h3", {}, t("Completeness")), report);
  return { el, stop: () => clearTimeout(timer) };
}

function inviteCell(o, msg, reload) {
  if (!can("operator")) return "—";
  if (o.state === "active" || o.state === "locked") return "—";
  const button = h("button", { type: "button", class: "secondary" }, o.state === "none" ? t("Invite") : t("Invite again"));
  button.addEventListener("click", () => {
    if (!EMAIL.test(o.email || "")) {
      msg.error(t("{name} has no valid e-mail address: add it to the occupant first.", { name: o.name }));
      return;
    }
    busy(button, msg, async () => {
      await api("POST", "/customer-info/invitations", { body: { occupant_id: o.occupant_id, send: true } });
      reload(); // first: reloading the list clears the message box
      msg.ok(t("Invitation sent to {email}.", { email: o.email }));
    });
  });
  return button;
}

function invitationSection(search) {
  const msg = messageBox();
  const holder = h("div");
  const input = h("input", { name: "search", type: "search", value: search, maxlength: 100 });
  const form = h("form", { class: "inline-form" }, field(t("Name, customer number or e-mail"), input),
    h("button", { type: "submit", class: "secondary" }, t("Search")));
  const reload = () => holder.replaceChildren(pagedTable([
    { label: t("Customer number"), cell: (o) => o.customer_ref },
    { label: t("Name"), cell: (o) => o.name },
    { label: t("E-mail"), cell: (o) => o.email || "—" },
    { label: t("Channel"), cell: (o) => channelText(o.channel) },
    { label: t("Portal"), cell: (o) => badge(invitationText(o.state), STATE_KIND[o.state]) },
    { label: t("Link valid until"), cell: (o) => (o.state === "invited" ? timeEl(o.invite_expires_at, false) : "—") },
    { label: t("Action"), cell: (o) => inviteCell(o, msg, reload) },
  ], (cursor) => api("GET", "/customer-info/invitations", { query: { search: input.value.trim() || undefined, cursor, limit: 50 } }),
  msg, { empty: t("No occupant found.") }));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    reload();
  });
  reload();
  return section(t("Occupant invitations"),
    h("p", { class: "muted" }, t("An invitation is an e-mail with a one-time link to the customer portal, valid for 14 days.")),
    form, msg.el, holder);
}

export function renderCustomers(main, _params, query) {
  document.title = t("Customer information — omshub console");
  const month = MONTH.test(query.get("month") || "") ? query.get("month") : lastMonth();
  const run = runSection(month);
  main.append(h("h1", {}, t("Customer information")),
    h("p", { class: "muted" }, t("The monthly consumption information every occupant must receive (HeizkostenV §6a): records, notices, completeness.")),
    run.el, invitationSection(query.get("search") || ""), can("admin") ? settingsSection() : "");
  return run.stop;
}

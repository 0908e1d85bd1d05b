// The tenant's settings of the customer information (admins): the supplier named in letters and
// e-mails, how the e-mail carries the information, the SMTP server, the deadline, and the annual
// information's content blocks (every one required before annual information is issued).
import { api } from "./api.js";
import { t } from "./i18n.js";
import { badge, busy, field, h, messageBox, section, showFieldErrors } from "./ui.js";

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

function blockLabels() {
  return {
    energy_mix: t("Energy mix (sources and generation, last year's average)"),
    emissions: t("Annual greenhouse-gas emissions"),
    primary_energy_factor: t("Primary energy factor of the network"),
    taxes_levies: t("Taxes, levies and duties"),
    device_charges: t("Charges for devices, reading and billing"),
    consumer_organisations: t("Contact details of consumer organisations and energy agencies"),
    dispute_resolution: t("Complaints and dispute resolution (VSBG)"),
  };
}

function inputs(s) {
  const text = (name, value, attrs = {}) => h("input", { name, value: value ?? "", ...attrs });
  const delivery = h("select", { name: "delivery" },
    h("option", { value: "attachment", selected: s.delivery === "attachment" }, t("the PDF attached")),
    h("option", { value: "link", selected: s.delivery === "link" }, t("a link to the customer portal")));
  const blocks = Object.fromEntries(Object.keys(blockLabels()).map((k) =>
    [k, h("textarea", { name: `annual_blocks.${k}`, rows: 2, maxlength: 4000 }, (s.annual_blocks || {})[k] || "")]));
  return {
    supplier_name: text("supplier_name", s.supplier_name, { maxlength: 200 }),
    supplier_address: h("textarea", { name: "supplier_address", rows: 2, maxlength: 500 }, s.supplier_address || ""),
    supplier_contact: text("supplier_contact", s.supplier_contact, { maxlength: 300 }),
    delivery,
    portal_url: text("portal_url", s.portal_url, { type: "url", maxlength: 500 }),
    deadline_day: text("deadline_day", s.deadline_day, { type: "number", min: 1, max: 28, required: true }),
    host: text("smtp.host", s.smtp.host, { maxlength: 253 }),
    port: text("smtp.port", s.smtp.port, { type: "number", min: 1, max: 65535, required: true }),
    starttls: h("input", { name: "smtp.starttls", type: "checkbox", checked: !!s.smtp.starttls }),
    username: text("smtp.username", s.smtp.username, { maxlength: 200, autocomplete: "off" }),
    password: h("input", { name: "smtp_password", type: "password", maxlength: 200, autocomplete: "new-password",
      placeholder: s.smtp.password_set ? t("set — empty keeps it") : "" }),
    sender: text("smtp.sender", s.smtp.sender, { type: "email", maxlength: 254 }),
    timeout_s: text("smtp.timeout_s", s.smtp.timeout_s, { type: "number", min: 1, max: 120, step: "any" }),
    blocks,
  };
}

// the problems the browser can see before asking the server, each next to its field
function problems(i) {
  const out = [];
  const intIn = (el, lo, hi) => /^\d+$/.test(el.value.trim()) && Number(el.value) >= lo && Number(el.value) <= hi;
  if (!intIn(i.deadline_day, 1, 28)) out.push({ field: "deadline_day", message: t("A day from 1 to 28.") });
  if (!intIn(i.port, 1, 65535)) out.push({ field: "smtp.port", message: t("A port from 1 to 65535.") });
  const timeout = Number(i.timeout_s.value);
  if (!(timeout > 0 && timeout <= 120)) out.push({ field: "smtp.timeout_s", message: t("Seconds, more than 0 and at most 120.") });
  if (i.sender.value.trim() && !EMAIL.test(i.sender.value.trim())) {
    out.push({ field: "smtp.sender", message: t("An e-mail address like info@stadtwerke.de.") });
  }
  if (i.delivery.value === "link" && !/^https?:\/\/\S+$/.test(i.portal_url.value.trim())) {
    out.push({ field: "portal_url", message: t("For a link, give the portal's address (starting with https:).") });
  }
  return out;
}

function changes(s, i) {
  const body = {};
  const same = (a, b) => String(a ?? "") === String(b ?? "");
  for (const k of ["supplier_name", "supplier_address", "supplier_contact", "delivery", "portal_url"]) {
    const v = k === "delivery" ? i[k].value : i[k].value.trim();
    if (!same(v, s[k])) body[k] = v;
  }
  if (!same(i.deadline_day.value, s.deadline_day)) body.deadline_day = Number(i.deadline_day.value);
  const smtp = {};
  for (const k of ["host", "username", "sender"]) if (!same(i[k].value.trim(), s.smtp[k])) smtp[k] = i[k].value.trim();
  if (!same(i.port.value, s.smtp.port)) smtp.port = Number(i.port.value);
  if (Number(i.timeout_s.value) !== Number(s.smtp.timeout_s)) smtp.timeout_s = Number(i.timeout_s.value);
  if (i.starttls.checked !== !!s.smtp.starttls) smtp.starttls = i.starttls.checked;
  if (Object.keys(smtp).length) body.smtp = smtp;
  if (i.password.value) body.smtp_password = i.password.value;
  const blocks = Object.fromEntries(Object.entries(i.blocks).map(([k, el]) => [k, el.value.trim()]).filter(([, v]) => v));
  const before = s.annual_blocks || {};
  if (JSON.stringify(blocks) !== JSON.stringify(Object.fromEntries(Object.entries(before).filter(([, v]) => v)))) {
    body.annual_blocks = blocks;
  }
  return body;
}

function blocksState(s) {
  const labels = blockLabels();
  const missing = Object.keys(labels).filter((k) => !((s.annual_blocks || {})[k] || "").trim());
  if (!missing.length) return h("p", {}, badge(t("complete"), "ok"), " ", t("Annual information can be issued."));
  return h("p", {}, badge(t("incomplete"), "bad"), " ",
    t("Annual information is refused until every block is filled. Missing:") + " " + missing.map((k) => labels[k]).join("; "));
}

function form(s, reload) {
  const msg = messageBox();
  const i = inputs(s);
  const submit = h("button", { type: "submit" }, t("Save settings"));
  const labels = blockLabels();
  const el = h("form", { novalidate: true }, msg.el,
    h("h3", {}, t("Supplier")),
    h("div", { class: "row" }, field(t("Name in letters and e-mails"), i.supplier_name),
      field(t("Contact for questions"), i.supplier_contact, t("phone, e-mail, web"))),
    field(t("Address"), i.supplier_address),
    h("h3", {}, t("Notices")),
    h("div", { class: "row" }, field(t("The e-mail carries"), i.delivery), field(t("Customer portal address"), i.portal_url),
      field(t("Deadline (day of the following month)"), i.deadline_day, t("information for a month is due by this day"))),
    h("h3", {}, t("Mail server (SMTP)")),
    h("div", { class: "row" }, field(t("Server"), i.host), field(t("Port"), i.port), field(t("Timeout (s)"), i.timeout_s),
      h("label", { class: "check" }, i.starttls, " ", t("STARTTLS"))),
    h("div", { class: "row" }, field(t("Sender address"), i.sender), field(t("User"), i.username),
      field(t("Password"), i.password, s.smtp.password_set ? t("A password is set; it is never shown.") : t("No password set."))),
    h("h3", {}, t("Annual information: content blocks")), blocksState(s),
    Object.entries(i.blocks).map(([k, el2]) => field(labels[k], el2)),
    submit);
  el.addEventListener("submit", (ev) => {
    ev.preventDefault();
    showFieldErrors(el, null);
    const found = problems(i);
    if (found.length) {
      showFieldErrors(el, { details: { fields: found } });
      msg.error(t("Please check the marked fields."));
      return;
    }
    const body = changes(s, i);
    if (!Object.keys(body).length) {
      msg.ok(t("Nothing changed."));
      return;
    }
    busy(submit, msg, async () => {
      const saved = await api("PATCH", "/customer-info/settings", { body });
      reload(saved, t("Settings saved."));
    });
  });
  return el;
}

export function settingsSection() {
  const holder = h("div");
  const msg = messageBox();
  const show = (s, done) => {
    const f = form(s, show);
    holder.replaceChildren(f);
    if (done) {
      const note = messageBox();
      f.prepend(note.el);
      note.ok(done);
    }
  };
  api("GET", "/customer-info/settings").then((s) => show(s)).catch((err) => msg.error(err.message));
  return section(t("Settings of the customer information"), msg.el, holder);
}

// Administration: users and their roles, API tokens (created and shown once, revoked, last used),
// and the audit log. Admins only (the API refuses everyone else).
import { api, can } from "./api.js";
import { fmtNum, t, tv } from "./i18n.js";
import { busy, field, h, messageBox, pagedTable, section, timeEl } from "./ui.js";

const ROLE_TEXT = { viewer: "Viewer — reads everything, changes nothing",
  operator: "Operator — also changes gateways, meters and metering points",
  admin: "Administrator — also manages users, tokens and keys" };
const ROLE_NAMES = { viewer: "Viewer", operator: "Operator", admin: "Administrator" };

function roleSelect(name, value = "viewer") {
  return h("select", { name }, Object.entries(ROLE_TEXT).map(([v, l]) => h("option", { value: v, selected: v === value }, t(l))));
}

function adminOnly(main) {
  if (can("admin")) return false;
  main.append(h("p", { class: "message error", role: "alert" }, t("Only administrators can see this page.")));
  return true;
}

export function renderAdmin(main) {
  document.title = t("Users and tokens — omshub console");
  main.append(h("h1", {}, t("Users and tokens")));
  if (adminOnly(main)) return;
  main.append(usersSection(), tokensSection());
}

function usersSection() {
  const msg = messageBox();
  const list = h("div");
  const load = () => list.replaceChildren(pagedTable([
    { label: t("User"), cell: (u) => u.username },
    { label: t("Role"), cell: (u) => {
      const sel = roleSelect("role", u.role);
      sel.setAttribute("aria-label", t("Role of {user}", { user: u.username }));
      sel.disabled = u.disabled;
      sel.addEventListener("change", () => busy(sel, msg, async () => {
        await api("PATCH", `/users/${u.id}`, { body: { role: sel.value } });
        msg.ok(t("{user} now has the role {role}.", { user: u.username, role: t(ROLE_NAMES[sel.value]) }));
      }));
      return sel;
    } },
    { label: t("Status"), cell: (u) => (u.disabled ? t("disabled") : t("active")) },
    { label: t("Created"), cell: (u) => timeEl(u.created_at, false) },
    { label: h("span", { class: "sr-only" }, t("Actions")), cell: (u) => {
      if (u.disabled) return "";
      const b = h("button", { type: "button", class: "small secondary" }, t("Disable"));
      b.setAttribute("aria-label", t("Disable {user}", { user: u.username }));
      b.addEventListener("click", () => busy(b, msg, async () => {
        await api("DELETE", `/users/${u.id}`);
        msg.ok(t("{user} is disabled; their sessions and tokens have ended.", { user: u.username }));
        load();
      }));
      return b;
    } },
  ], (cursor) => api("GET", "/users", { query: { cursor, limit: 100 } }), msg, { empty: t("No users.") }));

  const fMsg = messageBox();
  const username = h("input", { name: "username", required: true, autocomplete: "off" });
  const password = h("input", { name: "password", type: "password", required: true, autocomplete: "new-password" });
  const role = roleSelect("role");
  const submit = h("button", { type: "submit" }, t("Create user"));
  const form = h("form", {}, fMsg.el, h("div", { class: "row" }, field(t("Username"), username),
    field(t("Password"), password, t("At least 12 characters")), field(t("Role"), role)), submit);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(submit, fMsg, async () => {
      const u = await api("POST", "/users", { body: { username: username.value.trim(), password: password.value,
        role: role.value } });
      form.reset();
      fMsg.ok(t("User {user} created.", { user: u.username }));
      load();
    });
  });
  load();
  return section(t("Users"), msg.el, list, h("h3", {}, t("Create a user")), form);
}

function tokensSection() {
  const msg = messageBox();
  const list = h("div");
  const load = () => list.replaceChildren(pagedTable([
    { label: t("Name"), cell: (k) => k.name || "—" },
    { label: t("Belongs to"), cell: (k) => (k.owner ? k.owner.username : t("the tenant (service token)")) },
    { label: t("Role"), cell: (k) => t(ROLE_NAMES[k.effective_role] || k.effective_role) },
    { label: t("Created"), cell: (k) => timeEl(k.created_at, false) },
    { label: t("Last used"), cell: (k) => timeEl(k.last_used_at) },
    { label: t("Valid until"), cell: (k) => timeEl(k.expires_at, false, t("no end")) },
    { label: t("Status"), cell: (k) => (k.revoked ? t("revoked") : k.active ? t("active") : t("not valid")) },
    { label: h("span", { class: "sr-only" }, t("Actions")), cell: (k) => {
      if (k.revoked) return "";
      const b = h("button", { type: "button", class: "small secondary" }, t("Revoke"));
      b.setAttribute("aria-label", t("Revoke the token {name}", { name: k.name }));
      b.addEventListener("click", () => busy(b, msg, async () => {
        await api("DELETE", `/tokens/${k.id}`);
        msg.ok(t("The token {name} is revoked; programs using it are refused from now on.", { name: k.name }));
        load();
      }));
      return b;
    } },
  ], (cursor) => api("GET", "/tokens", { query: { cursor, limit: 100 } }), msg, { empty: t("No API tokens.") }));

  const fMsg = messageBox();
  const name = h("input", { name: "name", required: true, autocomplete: "off", placeholder: t("e.g. billing system") });
  const role = roleSelect("role");
  const submit = h("button", { type: "submit" }, t("Create token"));
  const shown = h("div", { id: "new-token", "aria-live": "polite" });
  const form = h("form", {}, fMsg.el, h("div", { class: "row" }, field(t("Name"), name), field(t("Role"), role)),
    submit, shown);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(submit, fMsg, async () => {
      const k = await api("POST", "/tokens", { body: { name: name.value.trim(), role: role.value } });
      form.reset();
      shown.replaceChildren(h("div", { class: "message ok", role: "status" },
        h("p", {}, t("Token {name} created. Copy it now: it is shown only this once.", { name: k.name })),
        h("p", {}, h("code", { class: "secret" }, k.token))));
      load();
    });
  });
  load();
  return section(t("API tokens for programs"), h("p", { class: "muted" }, t("A token lets a program (a billing " +
    "system, a script) use the API with the role it was given, never more than its creator has.")), msg.el, list,
  h("h3", {}, t("Create a token")), form);
}

// What an audit entry records, in words: its action and the details people can read (no ids).
const ACTIONS = {
  "user.create": "User created", "user.update": "User changed", "token.create": "Token created",
  "token.revoke": "Token revoked", "gateway.register": "Gateway registered", "gateway.credential": "Gateway credential renewed",
  "keys.import": "Keys imported", "keys.export": "Keys exported", "meter.timezone": "Meter time zone set",
  "telegrams.redecode": "Telegrams decoded again", "tenant.time_settings": "Time settings changed",
  "tenant.model_timezones": "Time zones of meter models changed",
  "alarm.acknowledge": "Alarm acknowledged",
};

function detailText(details) {
  return Object.entries(details || {}).filter(([k, v]) => !/(^|_)id$|_ids$|hash/.test(k) && v !== null &&
    typeof v !== "object").map(([k, v]) => `${tv(k)}: ${typeof v === "number" ? fmtNum(v) :
    typeof v === "boolean" ? (v ? t("yes") : t("no")) : tv(v, true)}`).join("; ");
}

export function renderAudit(main, _params, query) {
  document.title = t("Audit log — omshub console");
  main.append(h("h1", {}, t("Audit log")));
  if (adminOnly(main)) return;
  const msg = messageBox();
  const action = query.get("action") || "";
  const select = h("select", { name: "action" }, h("option", { value: "" }, t("all changes")),
    Object.entries(ACTIONS).map(([v, l]) => h("option", { value: v, selected: v === action }, t(l))));
  select.addEventListener("change", () => {
    location.hash = "#/audit" + (select.value ? `?action=${select.value}` : "");
  });
  main.append(h("p", { class: "muted" }, t("Who changed what: users, tokens, gateways, keys and time settings.")),
    h("form", { class: "inline-form" }, field(t("Show"), select)), msg.el,
    pagedTable([
      { label: t("When"), cell: (e) => timeEl(e.at, false) },
      { label: t("Who"), cell: (e) => (e.actor === "system" ? t("the system") : e.actor) },
      { label: t("What"), cell: (e) => (ACTIONS[e.action] ? t(ACTIONS[e.action]) : tv(e.action)) },
      { label: t("Details"), cell: (e) => detailText(e.details) },
    ], (cursor) => api("GET", "/audit", { query: { action, cursor, limit: 100 } }), msg,
    { empty: t("No changes recorded yet.") }));
}

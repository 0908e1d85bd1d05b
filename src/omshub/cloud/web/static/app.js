// The console's shell: login/logout, who is logged in, hash routes -> pages.
import { api, clearSession, saveSession, session, setUnauthorizedHandler } from "./api.js";
import { lang, LANGUAGES, setLang, t } from "./i18n.js";
import { clear, field, h, messageBox } from "./ui.js";
import * as dashboard from "./page-dashboard.js";
import * as gateways from "./page-gateways.js";
import * as meters from "./page-meters.js";
import * as telegrams from "./page-telegrams.js";
import * as points from "./page-points.js";
import * as lists from "./page-lists.js";
import * as find from "./page-find.js";
import * as admin from "./page-admin.js";
import * as billing from "./page-billing.js";
import * as alarms from "./page-alarms.js";
import * as deliveries from "./page-exports.js";
// --- customer information (custinfo2) ---
import * as customers from "./page-customers.js";
// --- end customer information ---

const main = document.getElementById("main");

// [pattern, nav key, page(main, params, query) -> cleanup?]
const ROUTES = [
  [/^\/?$/, "dashboard", dashboard.render],
  [/^\/gateways$/, "gateways", gateways.renderList],
  [/^\/gateways\/bulk$/, "gateways", gateways.renderBulk],
  [/^\/gateways\/(\d+)$/, "gateways", gateways.renderGateway],
  [/^\/meters$/, "meters", meters.renderList],
  [/^\/meters\/(\d+)$/, "meters", meters.renderMeter],
  [/^\/telegrams$/, "telegrams", telegrams.render],
  [/^\/points$/, "points", points.renderList],
  [/^\/points\/(\d+)$/, "points", points.renderPoint],
  [/^\/alarms$/, "alarms", alarms.renderAlarms],
  [/^\/operations$/, "operations", lists.renderOperations],
  [/^\/search$/, "search", find.renderSearch],
  [/^\/export$/, "exports", find.renderExport],
  [/^\/admin$/, "admin", admin.renderAdmin],
  [/^\/audit$/, "audit", admin.renderAudit],
  [/^\/review$/, "review", billing.renderReview],
  [/^\/deliveries$/, "deliveries", deliveries.renderExports],
  [/^\/customers$/, "customers", customers.renderCustomers], // customer information (custinfo2)
];

let cleanup = null;

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = raw.split("?");
  return { path, query: new URLSearchParams(qs || "") };
}

// The shell's own texts (index.html holds the English ones for a browser without JavaScript).
const NAV = { dashboard: "Dashboard", search: "Search", gateways: "Gateways", meters: "Meters", telegrams: "Telegrams",
  points: "Metering points", alarms: "Alarms", operations: "Operations", exports: "Export", admin: "Users and tokens",
  audit: "Audit log", review: "Review queue", deliveries: "Billing exports",
  customers: "Customer information" }; // customers: custinfo2
const ROLE_NAMES = { viewer: "Viewer", operator: "Operator", admin: "Administrator" };

function shellTexts() {
  document.documentElement.lang = lang();
  for (const a of document.querySelectorAll("[data-nav]")) a.textContent = t(NAV[a.dataset.nav] || a.dataset.nav);
  document.querySelector(".skip").textContent = t("Skip to content");
  document.querySelector("nav").setAttribute("aria-label", t("Main menu"));
  document.getElementById("logout").textContent = t("Log out");
  const loading = document.getElementById("loading");
  if (loading) loading.textContent = t("Loading…");
}

// The language switch: kept in the browser and, once logged in, as the user's own choice.
function languageSwitch() {
  const select = h("select", { class: "language", "aria-label": t("Language") },
    LANGUAGES.map((l) => h("option", { value: l, selected: l === lang() }, l === "de" ? "Deutsch" : "English")));
  select.addEventListener("change", async () => {
    setLang(select.value);
    if (session()) {
      try {
        await api("PATCH", "/auth/me", { body: { language: select.value } });
      } catch { /* kept in this browser at least */ }
    }
    shellTexts();
    showWho();
    route();
  });
  return select;
}

function storedLang() {
  try {
    return localStorage.getItem("omshub.lang");
  } catch {
    return null;
  }
}

// Who is logged in (the cookie session, if any): a new tab or a reload asks the server.
async function loadSession() {
  const me = await api("GET", "/auth/session");
  if (!me.active) {
    clearSession();
    return;
  }
  saveSession({ role: me.role, username: me.name, tenant: me.tenant.slug, tenant_name: me.tenant.name || me.tenant.slug });
  // the user's own choice, else this browser's (kept, or its language if German or English), else the tenant's
  const browser = (navigator.language || "").slice(0, 2).toLowerCase();
  if (me.language) setLang(me.language);
  else if (!storedLang() && !["de", "en"].includes(browser) && me.tenant_language) setLang(me.tenant_language);
  shellTexts();
}

function showWho() {
  const s = session();
  document.getElementById("topbar").hidden = !s;
  document.getElementById("lang-box").replaceChildren(languageSwitch());
  for (const a of document.querySelectorAll("[data-role]")) a.parentElement.hidden = !s || !canRole(s, a.dataset.role);
  if (!s) return;
  document.getElementById("who-tenant").textContent = s.tenant_name || s.tenant || "";
  document.getElementById("who-tenant").title = t("Tenant {slug}", { slug: s.tenant || "" });
  document.getElementById("who-user").textContent = s.username || "";
  const role = document.getElementById("who-role");
  role.textContent = t(ROLE_NAMES[s.role] || s.role);
  role.title = s.role === "viewer" ? t("Read-only access") : t("Can change settings");
}

function canRole(s, needed) {
  const rank = { viewer: 1, operator: 2, admin: 3 };
  return (rank[s.role] || 0) >= rank[needed];
}

function renderLogin(reason) {
  document.title = t("Log in — omshub console");
  const msg = messageBox();
  if (reason) msg.error(reason);
  const user = h("input", { name: "username", autocomplete: "username", required: true });
  const pass = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit" }, t("Log in"));
  const form = h("form", { class: "login card", "aria-labelledby": "login-title" },
    h("div", { class: "login-lang" }, languageSwitch()),
    h("h1", { id: "login-title" }, t("omshub console")),
    h("p", { class: "muted" }, t("Log in to manage gateways, meters and readings.")),
    msg.el, field(t("Username"), user), field(t("Password"), pass), submit);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    msg.hide();
    try {
      await api("POST", "/auth/login", { body: { username: user.value, password: pass.value, cookie: true } });
      await loadSession();
      showWho();
      if (location.hash === "" || location.hash.startsWith("#/login")) location.hash = "#/";
      else route();
    } catch (err) {
      msg.error(err.status === 401 ? t("Wrong username or password.") : err.message);
      pass.select();
    } finally {
      submit.disabled = false;
    }
  });
  clear(main, form);
  user.focus();
}

async function logout() {
  try {
    await api("POST", "/auth/logout");
  } catch { /* the token may already be gone; forget it anyway */ }
  clearSession();
  showWho();
  location.hash = "#/";
  renderLogin();
}

function route() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  if (!session()) {
    renderLogin();
    return;
  }
  const { path, query } = parseHash();
  for (const a of document.querySelectorAll("[data-nav]")) a.removeAttribute("aria-current");
  for (const [pattern, nav, page] of ROUTES) {
    const m = path.match(pattern);
    if (!m) continue;
    const link = document.querySelector(`[data-nav="${nav}"]`);
    if (link) link.setAttribute("aria-current", "page");
    // Each visit renders into its own element: a slow request of a page already left then
    // fills a detached element instead of appending to the page now shown.
    const view = h("div", { class: "view" });
    clear(main, view);
    const result = page(view, m.slice(1), query);
    if (typeof result === "function") cleanup = result;
    main.focus({ preventScroll: true });
    return;
  }
  document.title = t("Not found — omshub console");
  clear(main, h("h1", {}, t("Not found")), h("p", {}, t("This page does not exist.") + " "),
    h("a", { href: "#/" }, t("Dashboard")));
}

setUnauthorizedHandler(() => {
  if (!session()) return;
  clearSession();
  showWho();
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  renderLogin(t("Your session has ended. Please log in again."));
});

document.getElementById("logout").addEventListener("click", logout);
window.addEventListener("hashchange", route);
shellTexts();
loadSession().catch(() => clearSession()).finally(() => {
  showWho();
  route();
});

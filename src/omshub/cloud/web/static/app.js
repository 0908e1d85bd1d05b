// The console's shell: login/logout, who is logged in, hash routes -> pages.
import { api, clearSession, saveSession, session, setUnauthorizedHandler } from "./api.js";
import { clear, field, h, messageBox } from "./ui.js";
import * as dashboard from "./page-dashboard.js";
import * as gateways from "./page-gateways.js";
import * as meters from "./page-meters.js";
import * as telegrams from "./page-telegrams.js";
import * as points from "./page-points.js";
import * as lists from "./page-lists.js";

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
  [/^\/alarms$/, "alarms", lists.renderAlarms],
  [/^\/operations$/, "operations", lists.renderOperations],
];

let cleanup = null;

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = raw.split("?");
  return { path, query: new URLSearchParams(qs || "") };
}

function showWho() {
  const s = session();
  document.getElementById("topbar").hidden = !s;
  if (!s) return;
  document.getElementById("who-tenant").textContent = s.tenant_name || s.tenant || "";
  document.getElementById("who-tenant").title = "Tenant " + (s.tenant || "");
  document.getElementById("who-user").textContent = s.username || "";
  const role = document.getElementById("who-role");
  role.textContent = s.role;
  role.title = s.role === "viewer" ? "Read-only access" : "Can change settings";
}

function renderLogin(reason) {
  document.title = "Log in — omshub console";
  const msg = messageBox();
  if (reason) msg.error(reason);
  const user = h("input", { name: "username", autocomplete: "username", required: true });
  const pass = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { type: "submit" }, "Log in");
  const form = h("form", { class: "login card", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "omshub console"),
    h("p", { class: "muted" }, "Log in to manage gateways, meters and readings."),
    field("Username", user), field("Password", pass), msg.el, submit);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    msg.hide();
    try {
      const res = await api("POST", "/auth/login", { body: { username: user.value, password: pass.value } });
      saveSession({ token: res.token, role: res.role, username: res.username, tenant: res.tenant,
                    expires_at: res.expires_at });
      try {
        const me = await api("GET", "/auth/me");
        saveSession({ ...session(), tenant_name: me.tenant.name || me.tenant.slug });
      } catch { /* the slug from the login is enough */ }
      showWho();
      if (location.hash === "" || location.hash.startsWith("#/login")) location.hash = "#/";
      else route();
    } catch (err) {
      msg.error(err.status === 401 ? "Wrong username or password." : err.message);
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
  clear(main, h("h1", {}, "Not found"), h("p", {}, "This page does not exist. "), h("a", { href: "#/" }, "Dashboard"));
}

setUnauthorizedHandler(() => {
  if (!session()) return;
  clearSession();
  showWho();
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  renderLogin("Your session has ended. Please log in again.");
});

document.getElementById("logout").addEventListener("click", logout);
window.addEventListener("hashchange", route);
showWho();
route();

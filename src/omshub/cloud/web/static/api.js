// The JSON API client. The console's login is a cookie session (docs/security.md): the session
// token sits in an HttpOnly cookie the page never sees, so a new tab or a reload stays logged in;
// a change carries the CSRF token from the readable cookie in X-CSRF-Token. Who is logged in is
// kept here for the page (set from /auth/session when the console starts, and by the login).
import { lang, t } from "./i18n.js";

export class ApiError extends Error {
  // `details`: the whole `error` object of the answer (some carry more than code and message)
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

let who = null;

export function session() {
  return who;
}

export function saveSession(data) {
  who = data;
}

export function clearSession() {
  who = null;
}

function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)omshub_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

const ROLE_RANK = { viewer: 1, operator: 2, admin: 3 };

export function can(role) {
  const s = session();
  return !!s && (ROLE_RANK[s.role] || 0) >= ROLE_RANK[role];
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const text = q.toString();
  return text ? "?" + text : "";
}

// api("GET", "/gateways", {query: {...}}) -> parsed JSON (null for 204); throws ApiError.
// `body` is sent as JSON unless `contentType` is given (then as is, e.g. CSV text).
export async function api(method, path, { body, query: params, contentType } = {}) {
  const headers = { Accept: "application/json", "Accept-Language": lang() };
  if (!["GET", "HEAD"].includes(method)) headers["X-CSRF-Token"] = csrf();
  let payload;
  if (body !== undefined) {
    if (contentType) {
      headers["Content-Type"] = contentType;
      payload = body;
    } else {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
  }
  let response;
  try {
    response = await fetch("/api/v1" + path + query(params),
      { method, headers, body: payload, credentials: "same-origin" });
  } catch (err) {
    throw new ApiError(0, "network", t("The server cannot be reached. Check the network connection and try again."));
  }
  if (response.status === 204) return null;
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const err = (data && data.error) || {};
    // a validation error's problems in plain words, field by field (the API's `fields`)
    const plain = Array.isArray(err.fields) && err.fields.length ? err.fields.map((f) => f.message).join("; ") : null;
    // a page of something that does not exist: said without the id the API names it by
    const gone = response.status === 404 && method === "GET" ? t("This does not exist (any more): it may have been deleted, or the " +
      "address is wrong.") : null;
    const message = plain || gone || err.message || t("The server refused the request (status {status}).",
      { status: response.status });
    if (response.status === 401 && path !== "/auth/login") onUnauthorized(message);
    throw new ApiError(response.status, err.code || "http_" + response.status, message, err);
  }
  return data;
}

// All pages of a list endpoint, up to `max` items.
export async function listAll(path, params = {}, max = 1000) {
  const items = [];
  let cursor = null;
  do {
    const page = await api("GET", path, { query: { ...params, cursor, limit: Math.min(500, max) } });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items.slice(0, max);
}

// DOM helpers. Data always goes in as text (textContent), never as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
export function newId(prefix = "f") {
  uid += 1;
  return `${prefix}-${uid}`;
}

// A labelled form field: label above the control, optional hint under it.
export function field(label, control, hint) {
  if (!control.id) control.id = newId();
  const hintEl = hint ? h("small", { class: "hint", id: control.id + "-hint" }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hintEl);
}

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { year: "numeric", month: "2-digit", day: "2-digit",
                                       hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function relTime(iso) {
  if (!iso) return "never";
  const d = new Date(iso);
  const s = Math.round((d.getTime() - Date.now()) / 1000);
  const a = Math.abs(s);
  if (a < 10) return "just now";
  let text;
  if (a < 60) text = `${a} s`;
  else if (a < 3600) text = `${Math.round(a / 60)} min`;
  else if (a < 172800) text = `${Math.round(a / 3600)} h`;
  else text = `${Math.round(a / 86400)} days`;
  return s < 0 ? `${text} ago` : `in ${text}`;
}

// A time (relative, the exact time in its tooltip); `empty` is shown when there is none.
export function timeEl(iso, relative = true, empty = relative ? "never" : "—") {
  if (!iso) return h("span", { class: "muted" }, empty);
  return h("time", { datetime: iso, title: fmtTime(iso) }, relative ? relTime(iso) : fmtTime(iso));
}

export function badge(text, kind = "") {
  return h("span", { class: `badge ${kind}`.trim() }, text);
}

const STATE_KINDS = {
  PENDING: "warn", DELIVERED: "info", SUCCESSFUL: "ok", FAILED: "bad", SUPERSEDED: "muted",
  decoded: "ok", new: "info", no_key: "warn", wrong_key: "bad", unknown_meter: "warn", invalid: "bad",
  duplicate: "muted", present: "ok", missing: "warn", suspect: "warn", wrong: "bad",
};
export function stateBadge(state) {
  return h("span", { class: `badge ${STATE_KINDS[state] || ""}`.trim(), "data-state": state }, state);
}

export function fmtNum(v, digits = 3) {
  if (v === null || v === undefined || v === "") return "—";
  if (typeof v !== "number") return String(v);
  return Number.isInteger(v) ? v.toLocaleString() : v.toLocaleString(undefined, { maximumFractionDigits: digits });
}

// A table from rows; columns: [{label, cell: row => node|string, class}]
export function table(columns, rows, { empty = "Nothing to show.", caption } = {}) {
  if (!rows.length) return h("p", { class: "muted empty" }, empty);
  return h("div", { class: "table-wrap" },
    h("table", {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class }, c.label)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => h("td", { class: c.class }, c.cell(r))))))));
}

// A message box for an error (role=alert) or a success notice (role=status).
export function messageBox() {
  const el = h("div", { class: "message", hidden: true });
  return {
    el,
    error(text) {
      el.hidden = false;
      el.className = "message error";
      el.setAttribute("role", "alert");
      el.textContent = text;
    },
    ok(text) {
      el.hidden = false;
      el.className = "message ok";
      el.setAttribute("role", "status");
      el.textContent = text;
    },
    hide() {
      el.hidden = true;
      el.textContent = "";
    },
  };
}

// Runs `fn` while the button shows it is busy; errors go to `msg` (a messageBox).
export async function busy(button, msg, fn) {
  button.disabled = true;
  if (msg) msg.hide();
  try {
    return await fn();
  } catch (err) {
    if (msg) msg.error(err.message);
    else throw err;
    return undefined;
  } finally {
    button.disabled = false;
  }
}

export function section(title, ...children) {
  const id = newId("s");
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), children);
}

export function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error(`cannot read ${file.name}`));
    reader.readAsText(file);
  });
}

// A table filled page by page ("Load more"): fetchPage(cursor) -> {items, next_cursor}.
export function pagedTable(columns, fetchPage, msg, { empty = "Nothing to show." } = {}) {
  const tbody = h("tbody");
  const tableEl = h("div", { class: "table-wrap", hidden: true },
    h("table", {},
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class }, c.label)))),
      tbody));
  const emptyEl = h("p", { class: "muted empty", hidden: true }, empty);
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
  let cursor = null;
  async function load() {
    const page = await busy(more, msg, () => fetchPage(cursor));
    if (!page) return;
    for (const r of page.items) tbody.append(h("tr", {}, columns.map((c) => h("td", { class: c.class }, c.cell(r)))));
    tableEl.hidden = tbody.children.length === 0;
    emptyEl.hidden = tbody.children.length > 0;
    cursor = page.next_cursor;
    more.hidden = !cursor;
  }
  more.addEventListener("click", load);
  load();
  return h("div", { class: "paged" }, tableEl, emptyEl, more);
}

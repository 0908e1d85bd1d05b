// DOM helpers. Data always goes in as text (textContent), never as HTML.
import { fmtNum, fmtTime, relTime, t, tv } from "./i18n.js";

export { fmtNum, fmtTime, relTime };

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

// A time (relative, the exact time in its tooltip); `empty` is shown when there is none.
export function timeEl(iso, relative = true, empty = relative ? t("never") : "—") {
  if (!iso) return h("span", { class: "muted" }, empty);
  return h("time", { datetime: iso, title: fmtTime(iso, true) }, relative ? relTime(iso) : fmtTime(iso));
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
  return h("span", { class: `badge ${STATE_KINDS[state] || ""}`.trim(), "data-state": state }, tv(state));
}

// A table from rows; columns: [{label, cell: row => node|string, class}]
export function table(columns, rows, { empty = t("Nothing to show."), caption } = {}) {
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

// The problems of a refused form next to the fields they concern (the API's `error.fields`:
// field path and message); returns whether any was placed. Earlier ones are removed first.
export function showFieldErrors(form, err) {
  if (!form) return false;
  for (const old of form.querySelectorAll(".field-error")) old.remove();
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  let placed = false;
  for (const f of (err && err.details && err.details.fields) || []) {
    const name = String(f.field || "").split(".").pop();
    const control = name && form.querySelector(`[name="${CSS.escape(f.field)}"], [name="${CSS.escape(name)}"]`);
    if (!control) continue;
    if (!control.id) control.id = newId();
    const note = h("small", { class: "field-error", id: control.id + "-error" }, f.message);
    control.setAttribute("aria-invalid", "true");
    control.setAttribute("aria-describedby", note.id);
    control.after(note);
    placed = true;
  }
  return placed;
}

// Runs `fn` while the button shows it is busy; errors go to `msg` (a messageBox) and, where the
// API names the field, next to it.
export async function busy(button, msg, fn) {
  button.disabled = true;
  if (msg) msg.hide();
  if (button.form) showFieldErrors(button.form, null);
  try {
    return await fn();
  } catch (err) {
    const placed = showFieldErrors(button.form, err);
    if (msg) msg.error(placed ? t("Please check the marked fields.") + " " + err.message : err.message);
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

// A chosen file's text; an Error in plain words when it cannot be read or is no text file
// (an Excel workbook or another binary file: bytes no CSV has).
export async function readFile(file) {
  const bytes = new Uint8Array(await file.arrayBuffer().catch(() => {
    throw new Error(t("The file {name} cannot be read.", { name: file.name }));
  }));
  const head = bytes.subarray(0, 4096);
  const zip = head[0] === 0x50 && head[1] === 0x4b; // xlsx, ods, docx: zip archives
  if (zip || head.includes(0)) {
    throw new Error(t("The file {name} is not a CSV file (it looks like an Excel or another binary file). " +
      "Save it as “CSV UTF-8” and choose it again.", { name: file.name }));
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new Error(t("The file {name} is not in UTF-8. Save it as “CSV UTF-8” and choose it again.",
      { name: file.name }));
  }
}

// A table filled page by page ("Load more"): fetchPage(cursor) -> {items, next_cursor}.
// `onLoad()` runs after each page's rows are in (e.g. to apply a filter to them too).
export function pagedTable(columns, fetchPage, msg, { empty = t("Nothing to show."), onLoad } = {}) {
  const tbody = h("tbody");
  const tableEl = h("div", { class: "table-wrap", hidden: true },
    h("table", {},
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class }, c.label)))),
      tbody));
  const emptyEl = h("p", { class: "muted empty", hidden: true }, empty);
  const more = h("button", { type: "button", class: "secondary", hidden: true }, t("Load more"));
  let cursor = null;
  async function load() {
    const page = await busy(more, msg, () => fetchPage(cursor));
    if (!page) return;
    for (const r of page.items) tbody.append(h("tr", {}, columns.map((c) => h("td", { class: c.class }, c.cell(r)))));
    tableEl.hidden = tbody.children.length === 0;
    emptyEl.hidden = tbody.children.length > 0;
    cursor = page.next_cursor;
    more.hidden = !cursor;
    if (onLoad) onLoad();
  }
  more.addEventListener("click", load);
  load();
  return h("div", { class: "paged" }, tableEl, emptyEl, more);
}

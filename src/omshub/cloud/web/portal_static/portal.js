// The customer portal: log in (or set the password from an invitation link), the occupant's months as
// numbers and a 13-month bar chart, the PDF, the profile. Talks only to /portal/api with its cookie.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.hash.slice(1));
  let lang = localStorage.getItem("portal-lang") || "de";
  let tenant = params.get("t") || localStorage.getItem("portal-tenant") || "";
  let months = [];
  let me = null;  // the profile, with has_password and link_session
  let current = null;
  if (tenant) localStorage.setItem("portal-tenant", tenant);

  const tr = (key, vars) => {
    let s = (PORTAL_TEXTS[lang] || PORTAL_TEXTS.de)[key] || key;
    for (const [k, v] of Object.entries(vars || {})) s = s.replace("{" + k + "}", v);
    return s;
  };
  const locale = () => (lang === "de" ? "de-DE" : "en-GB");
  const monthName = (label, short) =>
    new Intl.DateTimeFormat(locale(), short ? { month: "short", year: "2-digit" } : { month: "long", year: "numeric" })
      .format(new Date(Date.UTC(+label.slice(0, 4), +label.slice(5, 7) - 1, 1)));
  const dayText = (iso) => new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeZone: "UTC" }).format(new Date(iso + "T00:00:00Z"));
  const decimals = (unit) => (unit === "m³" ? 2 : unit === "units" ? 0 : 1);
  const fig = (f, unit) =>
    f.value === null ? "–" : new Intl.NumberFormat(locale(), { minimumFractionDigits: decimals(unit), maximumFractionDigits: decimals(unit) }).format(f.value) + (f.mark || "");
  const unitText = (unit) => (unit === "units" ? tr("units") : unit);

  function say(text) { $("message").textContent = text || ""; }

  async function api(method, path, body) {
    // refusals come in the portal's language, not the browser's
    const opts = { method, headers: { "X-Portal": "1", "Accept-Language": lang }, credentials: "same-origin" };
    if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    const r = await fetch("/portal/api" + path, opts);
    if (r.status === 204) return null;
    const data = await r.json().catch(() => ({}));
    if (!r.ok) {
      const e = data.error || {};
      throw Object.assign(new Error((lang === "de" ? e.german : e.message) || e.message || r.statusText), { status: r.status });
    }
    return data;
  }

  function show(view) {
    for (const v of ["login", "invite", "months", "profile"]) $("view-" + v).hidden = v !== view;
    $("main").focus();
  }

  function applyLanguage() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = tr(el.dataset.i18n); });
    $("lang-de").setAttribute("aria-pressed", String(lang === "de"));
    $("lang-en").setAttribute("aria-pressed", String(lang === "en"));
    document.title = tr("portal_title");
    if (!$("view-months").hidden) { renderMonths(); loadAnnual().catch((e) => say(e.message)); }
    if (!$("view-profile").hidden) { renderPassword(); loadConsents().catch((e) => say(e.message)); }
  }

  function setLanguage(l) { lang = l; localStorage.setItem("portal-lang", l); say(""); applyLanguage(); }

  function chart(line) {
    const w = 640, h = 220, top = 24, base = h - 28, n = line.history.length, step = w / n;
    const max = Math.max(1, ...line.history.map((x) => x.value || 0), line.benchmarks.property.value || 0);
    const svg = [`<svg viewBox="0 0 ${w} ${h}" role="img" aria-labelledby="chart-title"><title id="chart-title">${tr(line.kind)}: ${tr("chart")} (${unitText(line.unit)})</title>`];
    line.history.forEach((x, i) => {
      const cx = i * step + step / 2;
      if (x.value !== null) {
        const bh = (Math.max(0, x.value) / max) * (base - top);
        svg.push(`<rect class="bar-${x.status === "estimated" ? "estimated" : "measured"}" x="${i * step + step * 0.15}" y="${base - bh}" width="${step * 0.7}" height="${bh}"><title>${monthName(x.month)}: ${fig(x, line.unit)}</title></rect>`);
        svg.push(`<text x="${cx}" y="${base - bh - 4}" text-anchor="middle">${fig(x, line.unit)}</text>`);
      } else {
        svg.push(`<text x="${cx}" y="${base - 4}" text-anchor="middle">–</text>`);
      }
      svg.push(`<text x="${cx}" y="${h - 10}" text-anchor="middle">${monthName(x.month, true)}</text>`);
    });
    svg.push(`<line x1="0" y1="${base}" x2="${w}" y2="${base}" stroke="#4a4a4a"/></svg>`);
    return svg.join("");
  }

  function esc(s) { return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]); }

  function renderDetail(rec) {
    const rows = rec.lines.map((l) => `<tr><th scope="row">${tr(l.kind)} (${esc(unitText(l.unit))})</th><td>${fig(l.month, l.unit)}</td><td>${fig(l.previous, l.unit)}</td><td>${fig(l.last_year, l.unit)}</td><td>${fig(l.benchmarks.property, l.unit)}</td><td>${fig(l.benchmarks.cohort, l.unit)}</td></tr>`);
    const notes = [tr("legend")];
    const [first, last] = rec.days;
    if (!first.endsWith("-01") || rec.lines.some((l) => l.history.some((x) => x.status === "before_move_in"))) notes.push(tr("partial"));
    for (const l of rec.lines) {
      const c = l.benchmarks.cohort;
      if (c.status === "measured") notes.push(tr(l.kind) + ": " + tr("cohort_size", { n: c.size }));
      if (c.status === "too_small") notes.push(tr(l.kind) + ": " + tr("cohort_small"));
      if (l.notes.includes("hca_units")) notes.push(tr("hca_units"));
    }
    $("month-detail").innerHTML = `
      <p>${esc(rec.unit.ref)} · ${esc(rec.property.name)} · ${tr("days")}: ${dayText(first)} – ${dayText(last)}</p>
      <div class="table-wrap"><table><caption class="notes">${monthName(rec.month)}</caption>
        <thead><tr><th scope="col"></th><th scope="col">${tr("this_month")}</th><th scope="col">${tr("previous")}</th><th scope="col">${tr("last_year")}</th><th scope="col">${tr("property_avg")}</th><th scope="col">${tr("cohort_avg")}</th></tr></thead>
        <tbody>${rows.join("")}</tbody></table></div>
      ${rec.lines.length ? `<h3>${tr(rec.lines[0].kind)}: ${tr("chart")}</h3><div class="chart">${chart(rec.lines[0])}</div>` : ""}
      <p class="notes">${notes.map(esc).join("<br>")}</p>
      <a class="pdf" href="/portal/api/months/${rec.month}/pdf" download>${tr("pdf")}</a>`;
  }

  async function loadMonth(label) {
    current = await api("GET", "/months/" + label);
    renderDetail(current);
  }

  function renderMonths() {
    const sel = $("month-select");
    sel.innerHTML = months.map((m) => `<option value="${m.month}">${monthName(m.month)}${m.heat ? " – " + fig(m.heat, "kWh") + " kWh" : ""}</option>`).join("");
    if (current) { sel.value = current.month; renderDetail(current); }
  }

  async function loadAnnual() {
    const years = await api("GET", "/annual");
    const list = $("annual-list");
    list.innerHTML = years.length
      ? years.map((y) => `<li><a class="pdf" href="/portal/api/annual/${y}/pdf" download>${esc(tr("annual_pdf", { year: y }))}</a></li>`).join("")
      : `<li>${esc(tr("annual_none"))}</li>`;
  }

  async function loadConsents() {
    const items = await api("GET", "/consents");
    const list = $("consent-list");
    if (!items.length) { list.innerHTML = `<li>${esc(tr("consent_none"))}</li>`; return; }
    list.innerHTML = items.map((c) => {
      const when = c.in_force ? tr("consent_in_force", { day: dayText(c.given_at.slice(0, 10)) }) : tr("consent_withdrawn", { day: dayText(c.withdrawn_at.slice(0, 10)) });
      const button = c.in_force ? ` <button type="button" data-consent="${c.id}">${esc(tr("consent_withdraw"))}</button>` : "";
      return `<li>${esc(c.provider)} · ${esc(monthName(c.scope.from))} – ${esc(monthName(c.scope.to))} · ${esc(when)}${button}</li>`;
    }).join("");
  }

  async function openMonths() {
    months = await api("GET", "/months");
    show("months");
    if (!months.length) { $("month-detail").textContent = tr("no_months"); $("month-select").innerHTML = ""; }
    else {
      current = null;
      renderMonths();
      await loadMonth(months[0].month);
    }
    await loadAnnual();  // one request after the other: each read is logged
  }

  function renderPassword() {
    const needsCurrent = !!(me && me.has_password && !me.link_session);
    $("password-current-row").hidden = !needsCurrent;
    $("password-current").required = needsCurrent;
    $("password-hint").textContent = tr(needsCurrent ? "password_hint" : "password_hint_link");
  }

  async function openProfile() {
    const p = await api("GET", "/me");
    me = p;
    renderPassword();
    $("profile-email").value = p.email;
    $("profile-language").value = p.language;
    document.querySelectorAll("input[name=channel]").forEach((r) => { r.checked = r.value === p.channel; });
    show("profile");
    await loadConsents();
  }

  async function start() {
    applyLanguage();
    if (params.get("invite")) { show("invite"); return; }
    if (params.get("login")) {
      const token = params.get("login");
      history.replaceState(null, "", location.pathname);  // the one-time link is used up either way
      say(tr("link_checking"));
      try {
        me = await api("POST", "/link-login", { token });
        say("");
        if (!localStorage.getItem("portal-lang")) setLanguage(me.language);
        await openMonths();
      } catch (e) { show("login"); say(e.message); }
      return;
    }
    try {
      me = await api("GET", "/me");
      if (me.language !== lang && !localStorage.getItem("portal-lang")) setLanguage(me.language);
      await openMonths();
    } catch (e) {
      show("login");
      if (!tenant) say(tr("no_tenant"));
    }
  }

  $("lang-de").addEventListener("click", () => setLanguage("de"));
  $("lang-en").addEventListener("click", () => setLanguage("en"));
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      me = await api("POST", "/login", { tenant, email: $("login-email").value, password: $("login-password").value });
      say("");
      if (!localStorage.getItem("portal-lang")) setLanguage(me.language);
      await openMonths();
    } catch (e) { say(e.message); }
  });
  $("invite-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const pw = $("invite-password").value;
    if (pw.length < 10) return say(tr("password_short"));
    if (pw !== $("invite-repeat").value) return say(tr("passwords_differ"));
    try {
      await api("POST", "/accept", { token: params.get("invite"), password: pw });
      history.replaceState(null, "", location.pathname);  // the one-time link is used up
      say("");
      await openMonths();
    } catch (e) { say(e.message); }
  });
  $("link-send").addEventListener("click", async () => {
    const email = $("login-email").value.trim();
    if (!email) { say(tr("email_missing")); $("login-email").focus(); return; }
    if (!tenant) return say(tr("no_tenant"));
    try {
      await api("POST", "/login-link", { tenant, email });
      say(tr("link_sent"));
    } catch (e) { say(e.message); }
  });
  $("password-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const pw = $("password-new").value;
    if (pw.length < 10) return say(tr("password_short"));
    if (pw !== $("password-new-repeat").value) return say(tr("passwords_differ"));
    const body = { new_password: pw };
    if (!$("password-current-row").hidden) body.current_password = $("password-current").value;
    try {
      await api("POST", "/me/password", body);
      $("password-form").reset();
      me = await api("GET", "/me");
      renderPassword();
      say(tr("password_saved"));
    } catch (e) { say(e.message); }
  });
  $("month-select").addEventListener("change", (ev) => loadMonth(ev.target.value).catch((e) => say(e.message)));
  $("logout").addEventListener("click", async () => { await api("POST", "/logout").catch(() => null); current = null; show("login"); });
  $("to-profile").addEventListener("click", () => openProfile().catch((e) => say(e.message)));
  $("back").addEventListener("click", () => openMonths().catch((e) => say(e.message)));
  $("profile-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const channel = (document.querySelector("input[name=channel]:checked") || {}).value;
    try {
      const p = await api("PATCH", "/me", { email: $("profile-email").value, language: $("profile-language").value, channel });
      setLanguage(p.language);
      say(tr("saved"));
    } catch (e) { say(e.message); }
  });
  $("consent-list").addEventListener("click", async (ev) => {
    const id = ev.target.dataset && ev.target.dataset.consent;
    if (!id) return;
    try { await api("POST", `/consents/${id}/withdraw`); await loadConsents(); say(tr("saved")); } catch (e) { say(e.message); }
  });
  $("consent-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const provider = $("consent-provider").value.trim(), from = $("consent-from").value, to = $("consent-to").value;
    if (!provider || !from || !to) return say(tr("consent_missing"));
    try {
      await api("POST", "/consents", { provider, provider_contact: $("consent-contact").value, scope: { from, to } });
      $("consent-form").reset();
      await loadConsents();
      say(tr("saved"));
    } catch (e) { say(e.message); }
  });
  // a link (invitation or login link) opened in a tab already showing the portal changes only the hash
  window.addEventListener("hashchange", () => {
    const h = new URLSearchParams(location.hash.slice(1));
    if (h.get("login") || h.get("invite")) location.reload();
  });
  start();
})();

// The tribes dashboard: a key in session storage, the /v1 API, Plotly charts (served
// by the app itself: no CDN).
"use strict";

const store = window.sessionStorage;
let me = null;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + store.getItem("tribes_key") } });
  const body = await r.json().catch(() => ({ code: "E_HTTP", message: r.statusText }));
  if (!r.ok) { const err = new Error(body.message); err.status = r.status; err.code = body.code; throw err; }
  return body;
}

function fmt(v, digits = 2) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return Number.isInteger(v) ? v.toLocaleString() : v.toFixed(digits);
  return String(v);
}

function show(id) {
  for (const s of ["login", "overview", "customers"]) document.getElementById(s).hidden = s !== id;
}

async function login(key) {
  store.setItem("tribes_key", key);
  try {
    me = await api("/v1/me");
  } catch (e) {
    store.removeItem("tribes_key");
    document.getElementById("login-error").textContent = e.message;
    show("login");
    return false;
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("who").textContent = `${me.name} (${me.role})`;
  document.getElementById("nav-customers").hidden = me.role === "viewer";
  return true;
}

function table(id, columns, rows) {
  const t = document.getElementById(id);
  t.replaceChildren(el("thead", {}, el("tr", {}, ...columns.map(([label, , num]) => el("th", num ? { class: "num" } : {}, label)))));
  const body = el("tbody");
  for (const r of rows) body.append(el("tr", {}, ...columns.map(([, get, num]) => el("td", num ? { class: "num" } : {}, fmt(get(r))))));
  t.append(body);
}

async function overview() {
  show("overview");
  const [seg, personas, history, versions] = await Promise.all([
    api("/v1/segments"), api("/v1/personas"), api("/v1/segments/history"), api("/v1/versions")]);
  document.getElementById("version-label").textContent = `version ${seg.version} · ${seg.method}, k = ${seg.k}`;
  Plotly.newPlot("sizes-chart", [{ type: "bar", x: seg.segments.map(s => s.name), y: seg.segments.map(s => s.size),
    text: seg.segments.map(s => (100 * s.share).toFixed(1) + "%"), textposition: "auto", marker: { color: "#2f6fde" } }],
    { margin: { t: 10, r: 10, b: 90, l: 50 }, yaxis: { title: "customers" } }, { displayModeBar: false, responsive: true });
  // persona names of the active version name every segment id (ids are stable across versions)
  const names = Object.fromEntries(seg.segments.map(s => [s.segment_id, s.name]));
  const ids = [...new Set(history.versions.flatMap(v => v.segments.map(s => s.segment_id)))];
  const traces = ids.map(id => {
    const pts = history.versions.map(v => [v.version, v.segments.find(s => s.segment_id === id)]);
    const last = pts.filter(p => p[1]).pop();
    return { type: "scatter", mode: "lines+markers", name: names[id] || (last ? last[1].name : `segment ${id}`),
             x: pts.map(p => p[0]), y: pts.map(p => p[1] ? 100 * p[1].share : null) };
  });
  Plotly.newPlot("trend-chart", traces, { margin: { t: 10, r: 10, b: 40, l: 50 },
    xaxis: { title: "version", dtick: 1 }, yaxis: { title: "share of customers (%)" } }, { displayModeBar: false, responsive: true });
  const cards = document.getElementById("personas");
  cards.replaceChildren(...personas.personas.map(p => el("div", { class: "persona" },
    el("h3", {}, p.name), el("div", { class: "share" }, `${fmt(p.size)} customers · ${(100 * p.share).toFixed(1)}%`),
    el("p", {}, p.description || ""), el("p", {}, el("strong", {}, "Action: "), p.action || "–"))));
  table("versions", [["version", v => v.version, true], ["created", v => String(v.created_at).slice(0, 19)],
    ["method", v => v.method], ["k", v => v.k, true], ["customers", v => v.customers, true],
    ["silhouette", v => v.silhouette, true], ["stability ARI", v => v.stability_ari, true], ["status", v => v.status]],
    versions.versions);
  await drift();
  await openAlerts();
  await recentTriggers(names);
  try {
    const k = await api("/v1/kpis");
    const cols = [["segment", r => names[r.segment_id] || r.segment_id]];
    const skip = new Set(["segment_id", "name", "version"]);
    for (const key of Object.keys(k.segments[0] || {})) if (!skip.has(key)) cols.push([key.replaceAll("_", " "), r => r[key], true]);
    table("kpis", cols, k.segments);
    document.getElementById("kpi-note").textContent = k.warning || `${k.kpis_differing} KPI(s) differ significantly across segments (α = ${k.alpha}).`;
  } catch (e) {
    document.getElementById("kpi-note").textContent = e.message;
  }
}

async function recentTriggers(names) {
  const note = document.getElementById("triggers-note");
  const chart = document.getElementById("triggers-chart");
  try {
    const t = await api(me.role === "viewer" ? "/v1/triggers/summary" : "/v1/triggers?limit=200");
    if (!t.available) { note.textContent = t.message; chart.hidden = true; return; }
    const types = Object.keys(t.counts).sort();
    note.textContent = types.length ? `The newest ${fmt(types.reduce((a, k) => a + t.counts[k], 0))} triggers.` : "No trigger yet.";
    chart.hidden = !types.length;
    if (types.length) Plotly.newPlot("triggers-chart", [{ type: "bar", orientation: "h", y: types, x: types.map(k => t.counts[k]),
      marker: { color: "#d9822b" } }], { margin: { t: 10, r: 10, b: 40, l: 180 }, xaxis: { title: "triggers" } },
      { displayModeBar: false, responsive: true });
    if (t.triggers.length) table("triggers", [["at (UTC)", r => new Date(r.at * 1000).toISOString().slice(0, 19).replace("T", " ")],
      ["type", r => r.type], ["customer", r => r.customer_key.slice(0, 12)],
      ["segment", r => r.segment_id === null ? null : (names[r.segment_id] || r.segment_id)],
      ["details", r => JSON.stringify(r.data).slice(0, 80)]], t.triggers.slice(0, 20));
  } catch (e) {
    note.textContent = e.message;
  }
}

async function drift() {
  const note = document.getElementById("drift-note");
  const chart = document.getElementById("drift-chart");
  try {
    const m = await api("/v1/monitor");
    if (!m.available) { note.textContent = m.message; chart.hidden = true; return; }
    document.getElementById("drift-label").textContent = `version ${m.version}, checked ${String(m.at).slice(0, 16).replace("T", " ")} UTC`;
    const t = m.thresholds || {};
    note.textContent = `Population stability index per feature against the customers version ${m.version} was fitted on (≥ ${t.psi_warning} moderate, ≥ ${t.psi_critical} major).`;
    const f = m.features || [];
    chart.hidden = !f.length;
    if (f.length) Plotly.newPlot("drift-chart", [{ type: "bar", x: f.map(r => r.feature), y: f.map(r => r.psi),
      marker: { color: f.map(r => r.psi >= t.psi_critical ? "#d64545" : r.psi >= t.psi_warning ? "#d9822b" : "#2f6fde") } }],
      { margin: { t: 10, r: 10, b: 90, l: 50 }, yaxis: { title: "PSI" },
        shapes: [t.psi_warning, t.psi_critical].map(y => ({ type: "line", xref: "paper", x0: 0, x1: 1, y0: y, y1: y, line: { dash: "dot", color: "#888" } })) },
      { displayModeBar: false, responsive: true });
    controlChart(m.charts || []);
  } catch (e) {
    note.textContent = e.message;
  }
}

function controlChart(charts) {
  // the weekly KPI series with a signal (else the first segment's size): values, centre, limits
  const drawn = charts.filter(c => c.center !== null);
  const spcNote = document.getElementById("spc-note");
  if (!drawn.length) { spcNote.textContent = charts.length ? `Control charts: ${charts[0].note}` : ""; return; }
  const flagged = drawn.filter(c => c.signals.length);
  const c = flagged[0] || drawn[0];
  const el = document.getElementById("spc-chart");
  el.hidden = false;
  const line = (y, dash) => ({ type: "scatter", mode: "lines", x: [c.weeks[0], c.weeks[c.weeks.length - 1]], y: [y, y],
    line: { color: "#888", dash, width: 1 }, hoverinfo: "skip", showlegend: false });
  Plotly.newPlot("spc-chart", [
    { type: "scatter", mode: "lines+markers", x: c.weeks, y: c.values, name: c.kpi, line: { color: "#2f6fde" }, showlegend: false },
    line(c.center, "solid"), line(c.upper, "dash"), line(c.lower, "dash"),
    { type: "scatter", mode: "markers", x: c.signals.map(s => s.week), y: c.signals.map(s => s.value), text: c.signals.map(s => s.rule),
      marker: { color: "#d64545", size: 11, symbol: "x" }, showlegend: false }],
    { margin: { t: 30, r: 10, b: 40, l: 50 }, title: { text: `segment ${c.segment_id}: weekly ${c.kpi}`, font: { size: 13 } } },
    { displayModeBar: false, responsive: true });
  spcNote.textContent = flagged.length ? `${flagged.length} weekly KPI series with a control-chart signal; the first is shown.`
    : `No control-chart signal in ${drawn.length} weekly KPI series.`;
}

async function openAlerts() {
  const note = document.getElementById("alerts-note");
  try {
    const a = await api("/v1/alerts?status=open&limit=50");
    note.textContent = a.alerts.length ? `${a.alerts.length} open; tribes alerts ack ID closes one.`
      : "No open alert: the last check of tribes monitor found no drift.";
    if (a.alerts.length) table("alerts", [["#", r => r.alert_id, true], ["since (UTC)", r => String(r.created_at).slice(0, 16).replace("T", " ")],
      ["severity", r => r.severity], ["kind", r => r.kind], ["subject", r => r.subject],
      ["what", r => r.message]], a.alerts);
  } catch (e) {
    note.textContent = e.message;
  }
}

async function customer(ident) {
  show("customers");
  const err = document.getElementById("customer-error");
  const out = document.getElementById("profile");
  err.textContent = ""; out.replaceChildren();
  if (me.role === "viewer") { err.textContent = "Customer pages need the analyst role; this key is a viewer key."; return; }
  if (!ident) return;
  document.getElementById("ident").value = ident;
  try {
    const p = await api("/v1/customers/" + encodeURIComponent(ident));
    const dl = el("dl");
    const add = (k, v) => dl.append(el("dt", {}, k), el("dd", {}, fmt(v)));
    add("customer key", p.customer_key);
    add("segment", p.segment ? `${p.segment.segment_name} (version ${p.segment.version})` : "none");
    add("persona action", p.persona ? p.persona.action : null);
    add("events / sessions", `${p.n_events} / ${p.n_sessions}`);
    if (p.clv) { add("CLV", p.clv.clv); add("P(alive)", p.clv.p_alive); add("churn risk", p.clv.churn_risk ? "yes" : "no"); }
    if (p.online) add("online segment (tribes stream)", p.online.segment_name || p.online.segment_id);
    for (const [k, v] of Object.entries(p.features)) add(k.replaceAll("_", " "), v);
    out.append(el("h3", {}, "Profile"), dl);
    if (p.recent_triggers && p.recent_triggers.length) {
      out.append(el("h3", {}, "Recent triggers"), el("table", { id: "customer-triggers" }));
      table("customer-triggers", [["at (UTC)", r => new Date(r.at * 1000).toISOString().slice(0, 19).replace("T", " ")],
        ["type", r => r.type], ["details", r => JSON.stringify(r.data).slice(0, 80)]], p.recent_triggers);
    }
  } catch (e) {
    err.textContent = e.status === 403 ? "Customer pages need the analyst role." : e.message;
  }
}

async function route() {
  if (!store.getItem("tribes_key")) { show("login"); return; }
  if (!me && !(await login(store.getItem("tribes_key")))) return;
  const [page, arg] = decodeURIComponent(location.hash.slice(1)).split("/");
  if (page === "customers") await customer(arg);
  else await overview();
}

document.getElementById("login-form").addEventListener("submit", async e => {
  e.preventDefault();
  if (await login(document.getElementById("key").value.trim())) { location.hash = "#overview"; route(); }
});
document.getElementById("search-form").addEventListener("submit", e => {
  e.preventDefault();
  location.hash = "#customers/" + encodeURIComponent(document.getElementById("ident").value.trim());
});
document.getElementById("logout").addEventListener("click", () => {
  store.removeItem("tribes_key"); me = null; document.getElementById("nav").hidden = true; location.hash = ""; show("login");
});
window.addEventListener("hashchange", route);
route();

// Magellan status page: polls /api/status every 2 s and redraws. Read only; no library.
"use strict";
const POLL_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "—" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function money(value) {
  if (value === null || value === undefined) return "—";
  const n = Number(value);
  return n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function signClass(value) {
  const n = Number(value);
  return n > 0 ? "num pos" : n < 0 ? "num neg" : "num";
}

function fill(tbodyId, rows, columns, emptyText, rowClass) {
  const tbody = document.querySelector(`#${tbodyId} tbody`);
  tbody.replaceChildren();
  if (!rows.length) {
    const tr = tbody.insertRow();
    const td = cell(tr, emptyText, "empty");
    td.colSpan = columns;
    return;
  }
  for (const row of rows) {
    const tr = tbody.insertRow();
    if (rowClass) tr.className = rowClass(row);
    row.cells(tr);
  }
}

function nyTime(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString("en-US", {
    timeZone: "America/New_York", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false,
  }) + " ET";
}

function alerts(s) {
  const lines = [];
  if (!s.health.ok) lines.push(`UNHEALTHY: ${s.health.reason}`);
  if (s.entries_stopped) lines.push(`ENTRIES STOPPED: ${s.entries_stopped}`);
  for (const h of s.halts) {
    const what = h.source === "emergency" ? "EMERGENCY STOP" : "HALTED";
    lines.push(`${what} ${h.strategy}: ${h.reason} (since ${nyTime(h.since)})`);
  }
  for (const u of s.guard.unprotected) lines.push(`UNPROTECTED ${u.strategy} ${u.symbol} qty ${u.qty}`);
  for (const u of s.guard.held_past_close) lines.push(`HELD PAST THE CLOSE ${u.strategy} ${u.symbol} qty ${u.qty}`);
  const box = $("alerts");
  box.replaceChildren(...lines.map((text) => {
    const div = document.createElement("div");
    div.textContent = text;
    return div;
  }));
  box.hidden = lines.length === 0;
}

function chart(svgId, points, label) {
  const svg = $(svgId);
  svg.replaceChildren();
  const W = 480, H = 160, L = 56, R = 8, T = 10, B = 20;
  const add = (tag, attrs, text) => {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    svg.appendChild(el);
    return el;
  };
  if (points.length === 0) {
    add("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no data yet");
    return;
  }
  const ys = points.map((p) => Number(p.equity));
  let lo = Math.min(0, ...ys), hi = Math.max(0, ...ys);
  if (hi === lo) hi = lo + 1;
  const x = (i) => L + (points.length === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (points.length - 1));
  const y = (v) => T + ((hi - v) * (H - T - B)) / (hi - lo);
  add("line", { x1: L, x2: W - R, y1: y(0), y2: y(0), stroke: "#d1d5db" });
  add("text", { x: L - 4, y: y(hi) + 4, "text-anchor": "end" }, money(hi));
  add("text", { x: L - 4, y: y(lo), "text-anchor": "end" }, money(lo));
  add("text", { x: L, y: H - 4 }, label(points[0]));
  add("text", { x: W - R, y: H - 4, "text-anchor": "end" }, label(points[points.length - 1]));
  const last = ys[ys.length - 1];
  const color = last < 0 ? "#c62828" : "#2e7d32";
  const d = ys.map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  add("path", { d, fill: "none", stroke: color, "stroke-width": 2 });
  for (const [i, v] of ys.entries()) if (points.length < 40) add("circle", { cx: x(i), cy: y(v), r: 2.5, fill: color });
}

function render(s) {
  $("mode").textContent = s.mode.toUpperCase();
  $("mode").className = `badge ${s.mode === "live" ? "live" : ""}`;
  $("health").textContent = s.health.ok ? "healthy" : `unhealthy: ${s.health.reason}`;
  $("health").className = `badge ${s.health.ok ? "ok" : "bad"}`;
  $("now").textContent = `market time ${nyTime(s.now)}`;
  $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  alerts(s);
  const bare = new Set([...s.guard.unprotected, ...s.guard.held_past_close].map((u) => `${u.strategy}/${u.symbol}`));
  fill("positions", s.positions.map((p) => ({
    key: `${p.strategy}/${p.symbol}`,
    cells: (tr) => {
      cell(tr, p.strategy); cell(tr, p.symbol); cell(tr, p.qty, "num"); cell(tr, money(p.avg_entry_price), "num");
      cell(tr, money(p.last_price), "num"); cell(tr, money(p.unrealized_pl), signClass(p.unrealized_pl));
      cell(tr, p.stop_price === null ? "none" : money(p.stop_price), p.stop_price === null ? "num danger" : "num");
    },
  })), 7, "no open positions", (r) => (bare.has(r.key) ? "danger" : ""));
  fill("pnl", Object.entries(s.pnl_today).map(([name, value]) => ({
    cells: (tr) => { cell(tr, name); cell(tr, money(value), signClass(value)); },
  })), 2, "no strategy");
  fill("jobs", s.next_jobs.map((j) => ({
    cells: (tr) => { cell(tr, j.name); cell(tr, nyTime(j.when)); },
  })), 2, "none planned");
  fill("orders", s.open_orders.map((o) => ({
    cells: (tr) => {
      cell(tr, o.strategy); cell(tr, o.symbol); cell(tr, o.side); cell(tr, o.type); cell(tr, o.qty, "num");
      cell(tr, o.stop_price === null ? null : money(o.stop_price), "num"); cell(tr, o.leg); cell(tr, o.status);
      cell(tr, nyTime(o.created_at));
    },
  })), 9, "no open orders");
  fill("signals", s.signals.map((g) => ({
    cells: (tr) => {
      cell(tr, nyTime(g.signal_time)); cell(tr, g.strategy); cell(tr, g.symbol); cell(tr, g.action); cell(tr, g.leg);
      cell(tr, g.reason, "reason"); cell(tr, g.status_reason ? `${g.status}: ${g.status_reason}` : g.status, "reason");
    },
  })), 7, "no signals yet");
  chart("equity-today", s.equity_today, (p) => nyTime(p.t).replace(/^.*, /, ""));
  chart("equity-sessions", s.equity_sessions, (p) => p.date);
  document.body.dataset.loaded = "1";
}

async function poll() {
  try {
    const response = await fetch("/api/status", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
  } catch (err) {
    $("health").textContent = `daemon not answering: ${err.message}`;
    $("health").className = "badge bad";
  }
  setTimeout(poll, POLL_MS);
}

poll();

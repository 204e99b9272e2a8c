// Paymaster dashboard: draws GET /admin/overview and redraws when the live stream says something changed.
// Plain DOM and SVG, no framework, nothing fetched from outside the gateway.
"use strict";

const COLORS = ["#3b6fd8", "#1f8a4c", "#b7791f", "#8e44ad", "#c53030", "#138496", "#6b7385", "#d35400"];
const LEVERS = {
  routing: "routing", caching: "prompt caching", response_cache: "response cache", batch: "batch",
  compression: "compression", output_control: "output control", output: "output control",
};
let state = null;
let pending = null;

function el(tag, attrs, ...kids) {
  const svg = ["svg", "rect", "text", "line", "g", "title"].includes(tag);
  const n = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") n.setAttribute("class", v);
    else if (k.startsWith("data-") || svg) n.setAttribute(k, v);
    else n[k] = v;
  }
  for (const k of kids) n.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return n;
}

function usd(s) { return s === null || s === undefined ? "—" : "$" + s; }

function meter(spent, cap) {
  const share = cap ? Math.min(1, Number(spent) / Number(cap)) : 0;
  const m = el("div", { class: "meter" + (share >= 1 ? " full" : share >= 0.8 ? " hot" : "") }, el("i"));
  m.firstChild.style.width = (share * 100).toFixed(1) + "%";
  return m;
}

function windowCell(w, kind) {
  if (!w) return el("td");
  const cap = w.cap_usd === null ? "no cap" : "of " + usd(w.cap_usd);
  return el("td", { class: "window " + kind },
    el("span", { class: "spent", "data-usd": w.spent_usd }, usd(w.spent_usd)), " ",
    el("span", { class: "cap muted", "data-usd": w.cap_usd === null ? "" : w.cap_usd }, cap),
    w.cap_usd === null ? "" : meter(w.spent_usd, w.cap_usd));
}

function drawFleet(o) {
  const box = document.getElementById("fleet");
  box.replaceChildren();
  for (const w of o.fleet.windows) {
    const label = w.window === "fleet daily" ? "Fleet today" : "Fleet this month";
    box.append(el("div", { class: "card", "data-window": w.window },
      el("div", { class: "muted" }, label),
      el("div", { class: "big spent", "data-usd": w.spent_usd }, usd(w.spent_usd)),
      el("div", { class: "muted" }, w.cap_usd === null ? "no cap" : "of " + usd(w.cap_usd) + " · resets " + short(w.resets_at)),
      w.cap_usd === null ? "" : meter(w.spent_usd, w.cap_usd)));
  }
  const saved = Object.values(o.savings.today).reduce((a, b) => a + Number(b), 0);
  box.append(el("div", { class: "card" }, el("div", { class: "muted" }, "Saved today by the levers"),
    el("div", { class: "big", id: "saved-today" }, "$" + saved.toFixed(6)),
    el("div", { class: "muted" }, o.recent.length ? "last call " + short(isoOf(o.recent[0].ts)) : "no calls yet")));
}

function short(iso) { return iso ? iso.replace("T", " ").slice(0, 16) : ""; }
function isoOf(ts) { return new Date(ts * 1000).toISOString(); }

function drawAgents(o) {
  const body = document.querySelector("#agents tbody");
  body.replaceChildren();
  for (const a of o.agents) {
    const day = a.windows.find((w) => w.window === "agent daily");
    const month = a.windows.find((w) => w.window === "agent monthly");
    const st = a.status;
    const held = a.windows.filter((w) => w.window.startsWith("agent")).map((w) => Number(w.reserved_usd));
    const statusCell = el("td", { class: "status" }, el("span", { class: "badge " + st.state, "data-state": st.state }, st.state));
    if (st.state !== "active") statusCell.append(el("div", { class: "reason" }, st.reason || ""));
    const resets = st.state === "blocked" && st.until ? "unblocks " + short(st.until) : "day resets " + short(day && day.resets_at);
    body.append(el("tr", { class: st.state, "data-agent": a.name },
      el("td", {}, el("strong", {}, a.name), el("div", { class: "muted" }, a.model)),
      statusCell,
      windowCell(day, "daily"),
      windowCell(month, "monthly"),
      el("td", { class: "num reserved" }, Math.max(0, ...held).toFixed(6)),
      el("td", { class: "num refused" }, a.refused_calls),
      el("td", { class: "resets muted" }, resets)));
  }
}

function drawSavings(o) {
  const body = document.querySelector("#savings tbody");
  body.replaceChildren();
  const levers = [...new Set([...Object.keys(o.savings.month), ...Object.keys(o.savings.today)])];
  if (!levers.length) body.append(el("tr", {}, el("td", { colSpan: 3, class: "muted" }, "nothing saved yet")));
  for (const k of levers) {
    body.append(el("tr", { "data-lever": k }, el("td", {}, LEVERS[k] || k),
      el("td", { class: "num today" }, o.savings.today[k] || "0.000000"),
      el("td", { class: "num month" }, o.savings.month[k] || "0.000000")));
  }
}

function drawRecent(o) {
  const body = document.querySelector("#recent tbody");
  body.replaceChildren();
  for (const r of o.recent) {
    const model = r.model === r.model_requested ? r.model : r.model_requested + " → " + r.model;
    body.append(el("tr", { "data-call": r.id, class: r.status === "ok" ? "" : "muted" },
      el("td", { title: r.id }, new Date(r.ts * 1000).toLocaleTimeString()),
      el("td", {}, r.agent), el("td", { title: r.route || "" }, model),
      el("td", {}, r.status + (r.reconcile ? " ⚑" : "")),
      el("td", { class: "num" }, r.input_tokens + " / " + r.output_tokens),
      el("td", { class: "num cost" }, r.cost_usd),
      el("td", { class: "num" }, Math.round(r.latency_ms))));
  }
}

function drawEvents(o) {
  const list = document.getElementById("events");
  list.replaceChildren();
  if (!o.events.length) list.append(el("li", { class: "muted" }, "no events yet"));
  for (const e of o.events) {
    const what = e.reason || (e.threshold !== undefined ? Math.round(e.threshold * 100) + "% of " + e.window : "") || e.cost_usd || "";
    list.append(el("li", { "data-event": e.type },
      el("span", { class: "muted" }, new Date(e.ts * 1000).toLocaleTimeString() + " "),
      el("span", { class: "kind" }, e.type), e.agent ? e.agent + " " : "", el("span", { class: "muted" }, what)));
  }
}

function drawChart(o) {
  const span = document.getElementById("span").value;
  const data = o.spend[span];
  const svg = document.getElementById("chart");
  const legend = document.getElementById("legend");
  svg.replaceChildren();
  legend.replaceChildren();
  const agents = Object.keys(data.agents);
  const n = data.labels.length;
  const totals = data.labels.map((_, i) => agents.reduce((s, a) => s + Number(data.agents[a][i]), 0));
  const top = Math.max(...totals, 0) || 1;
  const [x0, y0, w, h] = [48, 10, 580, 180];
  const bw = w / n;
  svg.append(el("line", { x1: x0, y1: y0 + h, x2: x0 + w, y2: y0 + h, stroke: "#ccc" }));
  svg.append(el("text", { x: x0 - 4, y: y0 + 8, "text-anchor": "end" }, "$" + top.toFixed(4)));
  svg.append(el("text", { x: x0 - 4, y: y0 + h, "text-anchor": "end" }, "$0"));
  for (let i = 0; i < n; i++) {
    let y = y0 + h;
    agents.forEach((a, k) => {
      const v = Number(data.agents[a][i]);
      if (!v) return;
      const bh = (v / top) * h;
      y -= bh;
      svg.append(el("rect", { x: x0 + i * bw + 1, y: y, width: Math.max(1, bw - 2), height: bh, fill: COLORS[k % COLORS.length] },
        el("title", {}, a + " " + data.labels[i] + ": $" + data.agents[a][i])));
    });
    if (i % Math.ceil(n / 8) === 0) {
      const label = span === "today" ? data.labels[i] : data.labels[i].slice(8);
      svg.append(el("text", { x: x0 + i * bw + bw / 2, y: y0 + h + 14, "text-anchor": "middle" }, label));
    }
  }
  agents.forEach((a, k) => {
    const swatch = el("i");
    swatch.style.background = COLORS[k % COLORS.length];
    legend.append(el("span", {}, swatch, a));
  });
  if (!agents.length) legend.append(el("span", {}, "no spend in this period"));
}

function draw(o) {
  state = o;
  document.getElementById("clock").textContent = short(o.now) + " (" + o.timezone + ")";
  drawFleet(o);
  drawAgents(o);
  drawSavings(o);
  drawRecent(o);
  drawEvents(o);
  drawChart(o);
  document.body.dataset.loaded = String(Date.now());
}

async function refresh() {
  pending = null;
  const r = await fetch("/admin/overview", { credentials: "same-origin", cache: "no-store" });
  if (r.status === 401) { location.href = "/dashboard/login"; return; }
  if (r.ok) draw(await r.json());
}

function soon() { if (!pending) pending = setTimeout(refresh, 150); }

function live() {
  const dot = document.getElementById("live");
  const es = new EventSource("/dashboard/live");
  es.onopen = () => { dot.className = "live on"; };
  es.onerror = () => { dot.className = "live off"; };
  const kinds = ["ledger.changed", "agent.blocked", "agent.degraded", "agent.unblocked", "budget.threshold",
    "ledger.recovered", "ledger.reconciled", "ledger.failing", "ledger.writable"];
  for (const k of kinds) es.addEventListener(k, soon);
  es.onmessage = soon;
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("span").addEventListener("change", () => state && drawChart(state));
  refresh();
  live();
});

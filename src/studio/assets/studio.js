// callflow studio: plain JavaScript, no build step, no request but to this server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { info: null, files: [], file: null, flow: null, sim: null, version: 0, tab: "call", liveTimer: null, liveId: null };

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) e.append(kid);
  return e;
}

async function api(path, opts) {
  const o = Object.assign({ headers: {} }, opts || {});
  if (o.json !== undefined) { o.method = o.method || "POST"; o.body = JSON.stringify(o.json); o.headers["content-type"] = "application/json"; delete o.json; }
  const r = await fetch(path, o);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((body.error && body.error.message) || r.status + " " + r.statusText);
  return body;
}

function fmtOffset(ms) {
  if (ms === null || ms === undefined) return "";
  const s = ms / 1000, m = Math.floor(s / 60);
  return m > 0 ? `+${m}m${(s - m * 60).toFixed(1).padStart(4, "0")}s` : `+${s.toFixed(1)}s`;
}

// ------------------------------------------------------------------ flows list

async function loadFlows() {
  const d = await api("api/flows");
  state.files = d.files;
  state.version = d.version;
  $("folder").textContent = d.dir;
  $("summary").textContent = d.summary;
  renderList();
  const other = $("other-diags");
  other.replaceChildren(...d.other.map((o) => el("pre", { class: "error small", text: o.rendered })));
}

function renderList() {
  const q = $("filter").value.trim().toLowerCase();
  const shown = state.files.filter((f) => !q || f.flow.toLowerCase().includes(q) || f.file.toLowerCase().includes(q) || (f.trigger || "").includes(q));
  const frag = document.createDocumentFragment();
  for (const f of shown) {
    const label = f.status === "valid" ? "valid" : f.status === "errors" ? `${f.errors} error${f.errors > 1 ? "s" : ""}` : `${f.warnings} warning${f.warnings > 1 ? "s" : ""}`;
    frag.append(el("li", {}, el("button", { "data-file": f.file, "aria-current": f.file === state.file ? "true" : "false", onclick: () => openFile(f.file) },
      el("span", { class: "st " + f.status, text: label }), el("span", { class: "name", text: f.flow }),
      el("span", { class: "meta", text: `${f.file}${f.trigger ? " · " + f.trigger : ""}${f.stale ? " · stale diagram" : ""}` }))));
  }
  $("flows").replaceChildren(frag);
  $("count").textContent = `${shown.length} of ${state.files.length} files`;
}

// ------------------------------------------------------------------ one flow

async function openFile(file, keepTab) {
  state.file = file;
  if (!keepTab) { state.sim = null; }
  renderList();
  $("welcome").hidden = true; $("live-view").hidden = true; $("flow-view").hidden = false;
  stopLive();
  await refreshFlow();
  if (!keepTab) {
    showTab(state.flow.status === "errors" ? "source" : "call");
    resetCall();
  }
}

async function refreshFlow() {
  const d = await api("api/flow?file=" + encodeURIComponent(state.file));
  state.flow = d;
  $("flow-name").textContent = d.flow;
  const st = $("flow-status");
  st.className = "pill " + d.status;
  st.textContent = d.status === "valid" ? "valid" : d.status === "errors" ? `${d.errors} error${d.errors > 1 ? "s" : ""}` : `${d.warnings} warning${d.warnings > 1 ? "s" : ""}`;
  $("flow-trigger").textContent = [d.trigger, d.timezone, d.file].filter(Boolean).join(" · ");
  $("flow-desc").textContent = (d.graph && d.graph.description) || "";
  $("stale").hidden = !d.stale;
  $("tab-week").hidden = !(d.calendars && d.calendars.length);
  renderDiagram($("diagram"), d.graph, { walk: state.sim && state.sim.walk, stale: d.stale, onSelect: showNodeLines });
  renderSource(d);
  if (!state.sim) fillCallForm(d);
  $("start").disabled = !d.graph;
  $("save-form").hidden = d.read_only;
}

function showTab(name) {
  state.tab = name;
  for (const t of ["call", "source", "scenarios", "week"]) {
    $("tab-" + t).setAttribute("aria-selected", t === name ? "true" : "false");
    $("panel-" + t).hidden = t !== name;
  }
  if (name === "week") loadWeek();
  if (name === "scenarios") renderDiagram($("cov-diagram"), state.flow.graph, { stale: state.flow.stale });
}

function renderSource(d) {
  const lines = d.source.split("\n");
  const marks = new Map();
  for (const g of d.diagnostics) {
    if (!g.line) continue;
    for (let n = g.line; n <= (g.end_line || g.line); n++) {
      const from = n === g.line ? g.column : 1, to = n === (g.end_line || g.line) ? g.end_column : lines[n - 1].length + 1;
      (marks.get(n) || marks.set(n, []).get(n)).push({ from, to, sev: g.severity });
    }
  }
  const frag = document.createDocumentFragment();
  lines.forEach((text, i) => {
    const n = i + 1, m = marks.get(n);
    const line = el("span", { class: "ln" + (m ? (m.some((x) => x.sev === "error") ? " hit" : " hit-warn") : ""), id: "L" + n, "data-n": String(n) });
    if (m) {
      const chars = Array.from(text);
      let pos = 1;
      for (const x of m.sort((a, b) => a.from - b.from)) {
        const from = Math.max(x.from, pos), to = Math.max(x.to, from + 1);
        if (from > pos) line.append(chars.slice(pos - 1, from - 1).join(""));
        line.append(el("mark", { class: x.sev === "warning" ? "warn" : "", text: chars.slice(from - 1, to - 1).join("") || " " }));
        pos = to;
      }
      if (pos <= chars.length) line.append(chars.slice(pos - 1).join(""));
    } else line.textContent = text;
    frag.append(line);
  });
  $("source").replaceChildren(frag);
  $("diag-summary").textContent = d.diagnostics.length ? `${d.errors} error${d.errors === 1 ? "" : "s"}, ${d.warnings} warning${d.warnings === 1 ? "" : "s"}, as callflow validate prints them:` : "No problem: callflow validate passes this file.";
  $("diagnostics").replaceChildren(...d.diagnostics.map((g) => el("div", { class: "diag " + g.severity },
    g.line ? el("a", { href: "#L" + g.line, text: `${g.file}:${g.line}:${g.column}`, onclick: (e) => { e.preventDefault(); jumpTo(g.line); } }) : null,
    el("pre", { text: g.rendered }))));
}

function jumpTo(line) {
  showTab("source");
  const l = $("L" + line);
  if (l) { l.scrollIntoView({ block: "center" }); l.classList.add("sel"); setTimeout(() => l.classList.remove("sel"), 1500); }
}

function showNodeLines(node) {
  const box = $("node-lines");
  if (!node.lines || !state.flow) { box.hidden = true; return; }
  const [a, b] = node.lines;
  const lines = state.flow.source.split("\n").slice(a - 1, b);
  box.hidden = false;
  box.replaceChildren(el("div", { class: "small" }, el("strong", { text: node.title }), ` · lines ${a}–${b} of ${state.flow.file} `,
    el("a", { href: "#L" + a, text: "open in the source", onclick: (e) => { e.preventDefault(); jumpTo(a); } })),
    node.description ? el("p", { class: "small node-desc", text: node.description }) : null,
    el("pre", { text: lines.map((t, i) => String(a + i).padStart(4) + "  " + t).join("\n") }));
}

// ------------------------------------------------------------------ diagram

const NODE_H = 42, GAP_X = 30, GAP_Y = 64, PAD = 24;

function nodeWidth(n) {
  if (n.shape === "start") return 22;
  const len = Math.max(n.title.length, (n.subtitle || "").length * 0.85);
  return Math.max(92, Math.round(len * 7.6 + 34));
}

function layout(g) {
  const byId = new Map(g.nodes.map((n) => [n.id, n]));
  const out = new Map(g.nodes.map((n) => [n.id, []]));
  g.edges.forEach((e, i) => out.get(e.from) && out.get(e.from).push({ to: e.to, i }));
  // Back edges: those closing a cycle in a depth-first walk from the start (and handlers).
  const back = new Set(), seen = new Set(), onStack = new Set(), order = [];
  const roots = ["start", ...g.nodes.filter((n) => n.shape === "handler").map((n) => n.id), ...g.nodes.map((n) => n.id)];
  function dfs(id) {
    seen.add(id); onStack.add(id);
    for (const { to, i } of out.get(id) || []) {
      if (onStack.has(to)) back.add(i); else if (!seen.has(to)) dfs(to);
    }
    onStack.delete(id); order.push(id);
  }
  for (const r of roots) if (byId.has(r) && !seen.has(r)) dfs(r);
  // Ranks: longest path over forward edges.
  const rank = new Map(g.nodes.map((n) => [n.id, 0]));
  for (const id of order.slice().reverse()) {
    for (const { to, i } of out.get(id) || []) if (!back.has(i) && byId.get(id).shape !== "handler") rank.set(to, Math.max(rank.get(to), rank.get(id) + 1));
  }
  for (const n of g.nodes) if (n.shape === "handler") {
    const targets = (out.get(n.id) || []).map((x) => rank.get(x.to));
    rank.set(n.id, targets.length ? Math.max(0, Math.min(...targets) - 1) : 0);
  }
  const rows = [];
  for (const id of order.slice().reverse()) { const r = rank.get(id); (rows[r] = rows[r] || []).push(id); }
  // Order within rows: a few barycentre sweeps.
  const pos = new Map();
  const reindex = () => rows.forEach((row) => row && row.forEach((id, k) => pos.set(id, k)));
  reindex();
  const preds = new Map(g.nodes.map((n) => [n.id, []]));
  g.edges.forEach((e, i) => { if (!back.has(i) && preds.get(e.to)) preds.get(e.to).push(e.from); });
  for (let sweep = 0; sweep < 4; sweep++) {
    for (let r = 1; r < rows.length; r++) {
      if (!rows[r]) continue;
      const bary = (id) => { const p = preds.get(id).filter((x) => rank.get(x) < r); return p.length ? p.reduce((s, x) => s + pos.get(x), 0) / p.length : pos.get(id); };
      rows[r].sort((a, b) => bary(a) - bary(b));
      reindex();
    }
  }
  // Coordinates: rows centred.
  const widths = new Map(g.nodes.map((n) => [n.id, nodeWidth(n)]));
  const rowW = rows.map((row) => (row || []).reduce((s, id) => s + widths.get(id), 0) + GAP_X * Math.max(0, (row || []).length - 1));
  const W = Math.max(...rowW, 200) + PAD * 2;
  const xy = new Map();
  rows.forEach((row, r) => {
    let x = (W - rowW[r]) / 2;
    (row || []).forEach((id) => { const w = widths.get(id); xy.set(id, { x, y: PAD + r * (NODE_H + GAP_Y), w, h: id === "start" ? 22 : NODE_H }); x += w + GAP_X; });
  });
  return { xy, back, W: W + 60, H: PAD * 2 + rows.length * (NODE_H + GAP_Y) };
}

const SVGNS = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...kids) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, v);
  for (const kid of kids.flat()) if (kid) e.append(kid);
  return e;
}

function renderDiagram(box, g, opts) {
  opts = opts || {};
  if (!g) { box.replaceChildren(el("p", { class: "muted", style: "padding:1rem", text: "No diagram: this file has never loaded without errors. Fix the errors in “Source & diagnostics”." })); return; }
  const { xy, back, W, H } = layout(g);
  const walk = opts.walk || { nodes: [], edges: [] };
  const lit = new Set(walk.nodes), litEdges = new Set(walk.edges);
  const current = walk.nodes.length ? walk.nodes[walk.nodes.length - 1] : null;
  const uncovN = new Set(opts.uncoveredNodes || []), uncovE = new Set(opts.uncoveredEdges || []);
  const svg = s("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "group", class: opts.stale ? "is-stale" : "", "aria-label": `Diagram of ${g.flow}` });
  svg.append(s("defs", {}, ["arrow", "arrow-lit", "arrow-red"].map((id) => s("marker", { id: box.id + id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" },
    s("path", { d: "M0,0 L10,5 L0,10 z", fill: id === "arrow-lit" ? "#0a58a8" : id === "arrow-red" ? "#b3261e" : "#59626c" })))));
  // Edges, grouped by (from, to): one path, one label per outcome.
  const groups = new Map();
  g.edges.forEach((e, i) => { const k = e.from + ">" + e.to; (groups.get(k) || groups.set(k, []).get(k)).push(i); });
  const edgeLayer = s("g"), labelLayer = s("g"), nodeLayer = s("g");
  let lane = 0;
  const placed = [];
  for (const idx of groups.values()) {
    const e0 = g.edges[idx[0]], a = xy.get(e0.from), b = xy.get(e0.to);
    if (!a || !b) continue;
    const isBack = idx.some((i) => back.has(i)) || b.y <= a.y;
    let d, lx, ly, xAt = null;
    if (!isBack) {
      const x1 = a.x + a.w / 2, y1 = a.y + a.h, x2 = b.x + b.w / 2, y2 = b.y, my = (y1 + y2) / 2;
      d = `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2 - 2}`;
      // The label sits on the curve in the gap just below its source: an
      // edge that skips rows would otherwise put it on a node in between.
      const at = (t, p0, p1, p2, p3) => { const u = 1 - t; return u * u * u * p0 + 3 * u * u * t * p1 + 3 * u * t * t * p2 + t * t * t * p3; };
      xAt = (want) => {
        let lo = 0, hi = 1;
        for (let k = 0; k < 20; k++) { const t = (lo + hi) / 2; if (at(t, y1, my, my, y2) < want) lo = t; else hi = t; }
        return at(lo, x1, x1, x2, x2);
      };
      ly = Math.min(my, y1 + GAP_Y / 2); lx = xAt(ly);
    } else {
      lane += 1;
      const x1 = a.x + a.w, y1 = a.y + a.h / 2, x2 = b.x + b.w, y2 = b.y + b.h / 2, side = Math.max(x1, x2) + 18 + lane * 8;
      d = `M${x1},${y1} C${side},${y1} ${side},${y2} ${x2 + 2},${y2}`;
      lx = side - 4; ly = (y1 + y2) / 2;
    }
    const anyLit = idx.some((i) => litEdges.has(i)), allFallback = idx.every((i) => g.edges[i].line === "fallback");
    const handler = idx.every((i) => g.edges[i].line === "handler");
    const allUncov = idx.every((i) => uncovE.has(i));
    const cls = ["edge", allFallback ? "fallback" : "", handler ? "handler" : "", anyLit ? "lit" : "", allUncov ? "uncovered" : ""].join(" ");
    const marker = anyLit ? "arrow-lit" : allFallback ? "arrow-red" : "arrow";
    const group = s("g", { class: cls, "data-edges": idx.join(",") });
    group.append(s("path", { d, "marker-end": `url(#${box.id}${marker})` }));
    edgeLayer.append(group);
    const labels = idx.filter((i) => g.edges[i].label);
    if (labels.length) {
      // Labels in the same gap must not overlap: try heights along the
      // curve, nearest first, and take the first free one.
      const chars = labels.reduce((n, i) => n + g.edges[i].label.length + 3, -3);
      const w = chars * 6 + 6;
      const box = (x, y) => (isBack ? { l: x, r: x + w, t: y - 8, b: y + 8 } : { l: x - w / 2, r: x + w / 2, t: y - 8, b: y + 8 });
      const free = (bx) => !placed.some((o) => bx.l < o.r && o.l < bx.r && bx.t < o.b && o.t < bx.b);
      if (xAt) {
        for (const dy of [0, -15, 15, -30, 30]) {
          const y = ly + dy, x = xAt(y);
          if (free(box(x, y))) { lx = x; ly = y; break; }
        }
      }
      placed.push(box(lx, ly));
      const text = s("text", { x: lx, y: ly + 4, "text-anchor": isBack ? "start" : "middle" });
      labels.forEach((i, k) => {
        if (k) text.append(s("tspan", {}, document.createTextNode(" · ")));
        const c = [g.edges[i].line === "fallback" ? "fallback" : "", litEdges.has(i) ? "lit" : "", uncovE.has(i) ? "uncovered" : ""].join(" ");
        text.append(s("tspan", { class: c, "data-edge": i }, document.createTextNode(g.edges[i].label)));
      });
      const lg = s("g", { class: cls });
      lg.append(text);
      labelLayer.append(lg);
    }
  }
  for (const n of g.nodes) {
    const p = xy.get(n.id);
    if (!p) continue;
    const cls = ["node", n.shape, lit.has(n.id) ? "lit" : "", n.id === current ? "current" : "", uncovN.has(n.id) ? "uncovered" : ""].join(" ");
    const ng = s("g", { class: cls, "data-node": n.id, "data-step": n.step || "", tabindex: n.step ? 0 : null, role: n.step ? "button" : null, "aria-describedby": n.step && lit.has(n.id) ? box.id + "-lit" : null, "aria-current": n.id === current ? "step" : null });
    const { x, y, w, h } = p;
    if (n.shape === "start") ng.append(s("circle", { cx: x + w / 2, cy: y + h / 2, r: 10 }));
    else if (n.shape === "decision") ng.append(s("polygon", { points: `${x + 12},${y} ${x + w - 12},${y} ${x + w},${y + h / 2} ${x + w - 12},${y + h} ${x + 12},${y + h} ${x},${y + h / 2}` }));
    else if (n.shape === "input") ng.append(s("polygon", { points: `${x + 10},${y} ${x + w},${y} ${x + w - 10},${y + h} ${x},${y + h}` }));
    else if (n.shape === "data") { ng.append(s("path", { d: `M${x},${y + 5} A${w / 2},5 0 0,1 ${x + w},${y + 5} V${y + h - 5} A${w / 2},5 0 0,1 ${x},${y + h - 5} Z` })); ng.append(s("path", { d: `M${x},${y + 5} A${w / 2},5 0 0,0 ${x + w},${y + 5}`, fill: "none" })); }
    else if (n.shape === "group") ng.append(s("polygon", { points: `${x + 8},${y} ${x + w - 8},${y} ${x + w},${y + h / 2} ${x + w - 8},${y + h} ${x + 8},${y + h} ${x},${y + h / 2}` }), s("circle", { cx: x + 10, cy: y + 10, r: 3 }), s("circle", { cx: x + 18, cy: y + 10, r: 3 }));
    else if (n.shape === "handoff") { ng.append(s("rect", { x, y, width: w, height: h, rx: 2 })); ng.append(s("rect", { x: x + 4, y: y + 4, width: w - 8, height: h - 8, rx: 1, fill: "none" })); }
    else ng.append(s("rect", { x, y, width: w, height: h, rx: n.shape === "end" ? h / 2 : n.shape === "plain" ? 9 : 3 }));
    if (n.description) ng.append(s("title", {}, document.createTextNode(n.description)));
    if (n.shape !== "start") {
      ng.append(s("text", { x: x + w / 2, y: y + 18, "text-anchor": "middle" }, document.createTextNode(n.title)));
      ng.append(s("text", { x: x + w / 2, y: y + 33, "text-anchor": "middle", class: "sub" }, document.createTextNode(n.subtitle)));
    }
    if (n.step && opts.onSelect) {
      ng.addEventListener("click", () => opts.onSelect(n));
      ng.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); opts.onSelect(n); } });
    }
    nodeLayer.append(ng);
  }
  // What the lit nodes are, for a screen reader (their names are their text).
  svg.append(s("desc", { id: box.id + "-lit" }, document.createTextNode("on the path of this call")));
  svg.append(edgeLayer, nodeLayer, labelLayer);
  if (opts.stale) svg.append(s("text", { x: 8, y: 16, class: "stale" }, document.createTextNode("stale: the last diagram that loaded")));
  box.replaceChildren(svg);
}

// ------------------------------------------------------------------ the call

function fillCallForm(d) {
  const def = d.defaults || {};
  $("f-from").value = def.from || "";
  $("f-to").value = def.to || "";
  $("f-at").value = def.at || "";
  $("f-tz").textContent = d.timezone ? `(${d.timezone})` : "";
  const box = $("f-params");
  box.replaceChildren(...d.params.map((p) => el("label", {}, `${p.name} (${p.type}${p.required ? ", required" : ""})`, el("input", { "data-param": p.name, "data-type": p.type, value: p.default === null || p.default === undefined ? "" : typeof p.default === "string" ? p.default : JSON.stringify(p.default) }))));
  $("f-params-box").hidden = !d.params.length;
  updateCalendars();
}

async function updateCalendars() {
  const d = state.flow;
  if (!d || !d.calendars || !d.calendars.length || !$("f-at").value) { $("f-cal").textContent = ""; return; }
  try {
    const c = await api(`api/calendars?file=${encodeURIComponent(state.file)}&at=${encodeURIComponent($("f-at").value)}`);
    $("f-cal").textContent = "At that moment: " + c.calendars.map((x) => `${x.name} is ${x.state}`).join(", ");
  } catch (e) { $("f-cal").textContent = e.message; }
}

function behaviour() {
  const g = {};
  if ($("f-transfer").value) g.transfer = $("f-transfer").value;
  if ($("f-callmode").value) g.call = $("f-callmode").value;
  if ($("f-join").value) g.join = $("f-join").value;
  if ($("f-hangup").value.trim()) g.hangup = $("f-hangup").value.trim();
  if ($("f-refuse").value) g.fail = { [$("f-refuse").value]: Number($("f-status").value) || 500 };
  return g;
}

function params() {
  const out = {};
  for (const i of document.querySelectorAll("#f-params input")) {
    if (i.value === "") continue;
    const t = i.dataset.type;
    out[i.dataset.param] = t === "number" || t === "integer" ? Number(i.value) : t === "boolean" || t === "bool" ? i.value === "true" : i.value;
  }
  return out;
}

async function startCall(ev) {
  ev.preventDefault();
  $("call-error").textContent = "";
  try {
    const v = await api("api/sims", { json: { file: state.file, from: $("f-from").value, to: $("f-to").value, at: $("f-at").value, params: params(), graph: behaviour() } });
    showSim(v);
    $("keypad").querySelector("button").focus();
  } catch (e) { $("call-error").textContent = e.message; }
}

async function act(path, body) {
  if (!state.sim) return;
  $("sim-error").textContent = "";
  const t0 = performance.now();
  try {
    const v = await api(`api/sims/${state.sim.id}/${path}`, { json: body || {} });
    showSim(v);
    window.__lastStepMs = performance.now() - t0;
  } catch (e) { $("sim-error").textContent = e.message; }
}

function showSim(v) {
  state.sim = v;
  $("call-form").hidden = true;
  $("call-live").hidden = false;
  $("c-clock").textContent = v.now.slice(0, 10) + " " + v.now.slice(11, 19);
  $("c-offset").textContent = fmtOffset(v.offset_ms) + " · " + v.calendars.map((c) => `${c.name} ${c.state}`).join(", ");
  const waiting = typeof v.waiting === "string" ? v.waiting : Object.keys(v.waiting || {})[0] || "";
  $("c-step").replaceChildren(v.ended ? el("strong", { text: `Ended: ${v.end ? `${v.end} (${v.outcome})` : v.outcome}` }) : document.createTextNode(""),
    v.step ? document.createTextNode(` step ${v.step}${!v.ended && waiting && waiting !== "nothing" ? " · waiting: " + waiting.replace(/_/g, " ") : ""}`) : "");
  $("c-next").textContent = v.next ? `Next if time passes: ${v.next.what} at ${fmtOffset(v.next.offset_ms)}` : v.ended ? "" : "Nothing is due.";
  for (const b of $("keypad").querySelectorAll("button")) b.disabled = !v.hears_keys;
  $("keypad-hint").textContent = v.hears_keys ? "The flow hears keys now: click, or type 0-9 * #." : "Keys reach the flow only while a step listens for them.";
  $("a-next").disabled = !v.next;
  $("a-next").textContent = v.next ? `Wait: ${v.next.what}` : "Wait: nothing due";
  $("a-5s").disabled = $("a-30s").disabled = v.ended && !v.next;
  $("a-hangup").disabled = !v.caller_on_line;
  $("timeline").replaceChildren(...v.timeline.map((e) => el("li", { class: "k-" + e.kind }, el("span", { class: "t", text: fmtOffset(e.offset_ms).padStart(8) + " " }), `${e.step || "-"}  ${e.kind}  ${e.text}`)));
  $("timeline").scrollTop = $("timeline").scrollHeight;
  $("requests").replaceChildren(...v.requests.map((r) => el("li", {}, el("details", {}, el("summary", { text: `${fmtOffset(r.offset_ms)} ${r.method} ${r.path}` }),
    el("div", { class: "small", text: r.line }), el("pre", { text: r.body === null || r.body === undefined ? "(no body)" : JSON.stringify(r.body, null, 2) })))));
  for (const p of v.problems) $("sim-error").textContent += p + " ";
  renderDiagram($("diagram"), state.flow.graph, { walk: v.walk, stale: state.flow.stale, onSelect: showNodeLines });
}

function resetCall() {
  state.sim = null;
  $("call-form").hidden = false;
  $("call-live").hidden = true;
  $("save-result").textContent = "";
  if (state.flow) { fillCallForm(state.flow); renderDiagram($("diagram"), state.flow.graph, { stale: state.flow.stale, onSelect: showNodeLines }); }
}

async function saveScenario(ev) {
  ev.preventDefault();
  const name = $("s-name").value.trim();
  if (!name) { $("save-result").textContent = "Give the scenario a name first."; $("s-name").focus(); return; }
  try {
    const r = await api(`api/sims/${state.sim.id}/scenario`, { json: { name } });
    $("save-result").textContent = `Saved ${r.file}: ${r.passed ? "it passes" : "it FAILS: " + r.failures.join("; ")}${r.ran_on ? " (the call had not ended: the scenario runs it to its end)" : ""}.`;
  } catch (e) { $("save-result").textContent = e.message; }
}

// ------------------------------------------------------------------ scenarios

async function runScenarios() {
  $("scen-summary").textContent = "running…";
  try {
    const r = await api("api/scenarios?file=" + encodeURIComponent(state.file));
    $("scen-summary").textContent = ` ${r.passed} passed, ${r.failed} failed; ${r.coverage.missing_steps.length} step${r.coverage.missing_steps.length === 1 ? "" : "s"} and ${r.coverage.missing_links.length} link${r.coverage.missing_links.length === 1 ? "" : "s"} not reached`;
    renderDiagram($("cov-diagram"), state.flow.graph, { uncoveredNodes: r.coverage.uncovered_nodes, uncoveredEdges: r.coverage.uncovered_edges, stale: state.flow.stale });
    $("scen-list").replaceChildren(
      ...(r.runs.length ? [] : [el("p", { class: "muted", text: "This flow has no scenario yet: click a call through it and save it." })]),
      ...r.runs.map((run) => el("div", { class: "run" },
        el("details", { open: !run.passed || null }, el("summary", {}, el("span", { class: run.passed ? "pass" : "fail", text: run.passed ? "ok " : "FAILED " }), run.name, el("span", { class: "muted small", text: " " + run.file })),
          run.failures.length ? el("ul", {}, run.failures.map((f) => el("li", { class: "error small", text: f }))) : null,
          sideBySide(run)))),
      r.coverage.missing_links.length ? el("details", {}, el("summary", { text: "Not reached" }), el("ul", { class: "small" }, [...r.coverage.missing_steps.map((x) => "step " + x), ...r.coverage.missing_links].map((x) => el("li", { text: x })))) : null);
  } catch (e) { $("scen-summary").textContent = e.message; }
}

function sideBySide(run) {
  const grid = el("div", { class: "side-by-side" }, el("strong", { text: "expected" }), el("strong", { text: "actual" }));
  const byActual = new Map();
  run.matched.forEach((m, i) => { if (m !== null) byActual.set(m, i); });
  const rows = Math.max(run.expected.length, run.actual.length);
  let ei = 0;
  for (let ai = 0; ai < run.actual.length || ei < run.expected.length; ai++) {
    if (ai < run.actual.length && byActual.has(ai)) { grid.append(el("div", { text: run.expected[byActual.get(ai)] }), el("div", { text: run.actual[ai] })); ei = byActual.get(ai) + 1; }
    else if (ai < run.actual.length) grid.append(el("div", { text: "" }), el("div", { text: run.actual[ai] }));
    else { grid.append(el("div", { class: "miss", text: "✗ " + run.expected[ei] }), el("div", { text: "" })); ei++; }
    if (ai > rows * 2) break;
  }
  return grid;
}

// ------------------------------------------------------------------ week

async function loadWeek(ev) {
  if (ev) ev.preventDefault();
  const box = $("week");
  try {
    const w = await api(`api/hours?file=${encodeURIComponent(state.file)}&week=${encodeURIComponent($("w-date").value)}`);
    if (!$("w-date").value) $("w-date").value = w.days[0];
    const head = el("tr", {}, el("th", { text: "time" }), w.days.map((d) => el("th", { text: new Date(d + "T12:00:00Z").toLocaleDateString("en-GB", { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" }) })));
    const body = w.times.map((t, r) => el("tr", {}, el("th", { text: t }), w.days.map((_, d) => {
      const m = w.moments[r * 7 + d];
      const cal = m.calendars.length ? m.calendars[0] : "";
      return el("td", { class: cal, title: m.path.join(" → ") }, m.step || "-", m.calendars.length ? el("div", { class: "cal", text: w.calendars.map((c, i) => `${c} ${m.calendars[i]}`).join(", ") }) : null);
    })));
    box.replaceChildren(el("table", {}, el("caption", { class: "muted small", text: `${w.flow} (${w.timezone})` }), el("thead", {}, head), el("tbody", {}, body)));
  } catch (e) { box.replaceChildren(el("p", { class: "error", text: e.message })); }
}

// ------------------------------------------------------------------ live (serve's /ui)

async function showLive() {
  state.file = null; renderList();
  $("welcome").hidden = true; $("flow-view").hidden = true; $("live-view").hidden = false;
  await refreshLive();
  stopLive();
  state.liveTimer = setInterval(refreshLive, 1000);
}

function stopLive() { if (state.liveTimer) clearInterval(state.liveTimer); state.liveTimer = null; }

async function refreshLive() {
  try {
    const d = await api("api/live");
    $("live-list").replaceChildren(...(d.sessions.length ? [] : [el("li", { class: "muted", text: "No call yet." })]),
      ...d.sessions.map((x) => el("li", {}, el("button", { "data-session": x.id, "aria-current": x.id === state.liveId ? "true" : "false", onclick: () => { state.liveId = x.id; refreshLive(); } },
        el("strong", { text: x.flow }), ` · ${x.state}${x.outcome ? " · " + (x.end ? `${x.end} (${x.outcome})` : x.outcome) : ""}${x.step ? " · step " + x.step : ""}`, el("div", { class: "muted small", text: x.id })))));
    if (!state.liveId && d.sessions.length) state.liveId = d.sessions[0].id;
    if (state.liveId) {
      const s = await api("api/live/" + encodeURIComponent(state.liveId));
      renderDiagram($("live-diagram"), s.graph, { walk: s.walk });
      $("live-timeline").replaceChildren(...s.timeline.map((e) => el("li", { class: "k-" + e.kind }, el("span", { class: "t", text: fmtOffset(e.offset_ms).padStart(8) + " " }), `${e.step || "-"}  ${e.kind}  ${e.text}`)));
    }
  } catch (e) { $("live-list").replaceChildren(el("li", { class: "error", text: e.message })); }
}

// ------------------------------------------------------------------ live reload

function listen() {
  const es = new EventSource("api/events");
  es.addEventListener("open", () => { $("live-state").textContent = "live: edits show here"; });
  es.addEventListener("error", () => { $("live-state").textContent = "reconnecting…"; });
  es.addEventListener("version", async (ev) => {
    const v = JSON.parse(ev.data).version;
    if (v === state.version) return;
    await loadFlows();
    if (state.file) {
      if (!state.files.some((f) => f.file === state.file)) { state.file = null; $("flow-view").hidden = true; $("welcome").hidden = false; return; }
      await refreshFlow();
    }
    document.body.dataset.version = String(v);
  });
}

// ------------------------------------------------------------------ wiring

async function boot() {
  state.info = await api("api/info");
  $("live-link").hidden = !state.info.live;
  $("live-link").addEventListener("click", showLive);
  $("filter").addEventListener("input", renderList);
  for (const t of ["call", "source", "scenarios", "week"]) $("tab-" + t).addEventListener("click", () => showTab(t));
  $("stale-link").addEventListener("click", (e) => { e.preventDefault(); showTab("source"); });
  $("call-form").addEventListener("submit", startCall);
  $("f-at").addEventListener("change", updateCalendars);
  $("keypad").addEventListener("click", (e) => { const k = e.target.dataset && e.target.dataset.key; if (k) act("press", { key: k }); });
  $("a-next").addEventListener("click", () => act("advance", {}));
  $("a-5s").addEventListener("click", () => act("advance", { by: "5s" }));
  $("a-30s").addEventListener("click", () => act("advance", { by: "30s" }));
  $("a-hangup").addEventListener("click", () => act("hangup", {}));
  $("a-new").addEventListener("click", resetCall);
  $("save-form").addEventListener("submit", saveScenario);
  $("run-scenarios").addEventListener("click", runScenarios);
  $("week-form").addEventListener("submit", loadWeek);
  document.addEventListener("keydown", (e) => {
    const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName);
    if (e.key === "/" && !typing) { e.preventDefault(); $("filter").focus(); return; }
    if (!typing && state.sim && state.sim.hears_keys && state.tab === "call" && /^[0-9*#]$/.test(e.key)) { e.preventDefault(); act("press", { key: e.key }); }
  });
  await loadFlows();
  listen();
  document.body.dataset.ready = "true";
}

boot().catch((e) => { document.body.prepend(el("p", { class: "error", text: "The studio could not start: " + e.message })); });

// echomesh heatmap: polls the JSON API and draws sources x targets on a canvas.
//
// Why polling and not a stream: a poll is one self-contained request, so a dropped connection,
// an aggregator restart or a proxy timeout all heal the same way (the next poll), and the page
// can say exactly how old its picture is. Why canvas: 500 nodes are 250 000 cells.
//
// Every string that comes from the API (node names, addresses, error messages) is inserted as
// text (textContent, text nodes, canvas fillText), never parsed as HTML.
"use strict";

const ALARM = [228, 0, 43]; // DOWN, whatever the metric (#e4002b, also in style.css)
const UNKNOWN = [140, 140, 140]; // stale: the source agent stopped reporting
const NODATA = [233, 236, 241]; // no edge (the diagonal, or not probed)
const INK = "#1d2330";
const RAMP = [
  [26, 152, 80],
  [166, 217, 106],
  [254, 224, 139],
  [253, 141, 60],
  [127, 39, 4],
];
const NETWORKS = ["pod", "host"];
const STRIP = 12; // px, the per-node strip along each axis when names do not fit
const MARK_MIN = 6; // px, smallest cell that carries a state mark (below it the strips do)
const MAX_CELL = 160;
const POLL_MS = 2000;
// A 500-node matrix is ~3 MB of JSON, and each roll-up of a large cluster walks every edge: big
// clusters are polled less often.
const pollMs = () => (view.large || largest() > 200 ? 3 * POLL_MS : POLL_MS);
const MAX_BACKOFF_MS = 15000;
const staleAfterMs = () => 3 * pollMs() + 1000;
// A request that takes longer failed. The roll-ups of a large cluster walk every edge (a million
// at 5,000 nodes under the default budget): they get longer.
const fetchTimeoutMs = () => (view.large ? 20000 : 5000);

const params = new URLSearchParams(location.search);
// Self-tests for the headless browser test: "1" checks the drawn pixels and marks, "reconnect"
// records each poll's outcome and the banner until the page has lost and regained the aggregator.
const selftest = params.get("selftest");
const $ = (id) => document.getElementById(id);

const wanted = params.get("network");
const view = {
  metric: params.get("metric") || "loss",
  // "pod", "host" or "both"; without ?network= the page picks the networks that have agents.
  network: wanted || "pod",
  auto: !wanted,
  chosen: !!wanted,
  agents: null, // agents per network, from /api/v1/nodes
  order: params.get("order") || "name",
  panels: [],
  lastOk: 0,
  failures: 0,
  // ?src=a&dst=b opens that edge's details (shareable links, screenshots).
  selected: params.get("src") && params.get("dst")
    ? { src: params.get("src"), dst: params.get("dst"), network: params.get("edge_network") || null }
    : null,
  timer: null,
  selftestDone: false,
  pollLog: [],
  history: null, // what the last history charts drew (axes, labels), for the self-test
  // At scale (zones.js): the zone grid and node table instead of one N x N matrix.
  large: false,
  force: params.get("view"), // "zones" or "matrix" overrides the choice by size
  refused: false, // the aggregator refused the whole matrix (too many nodes): zones it is
  zone: params.has("zone") ? params.get("zone") : null, // the zone zoomed into ("" = unknown zone)
  focus: null, // a node outlined in its zone's matrix (clicked in the table)
  zoneMatrix: null,
  zoneGrid: null,
  nodeSummary: null,
  pageTokens: [""], // the node table's pages so far: the last is shown, "‹ worse" pops it
  loadedMs: null, // performance.now() when the first node table was on screen
  agentsKnown: null,
  recount: false,
};

function largest() {
  return Math.max(0, ...view.panels.map((p) => (p.matrix ? p.matrix.nodes.length : 0)));
}

const networksShown = () => (view.network === "both" ? NETWORKS : [view.network]);

// ---- small DOM helpers ----------------------------------------------------------------------

// el("td", {class: "num"}, "text", child): strings become text nodes, never HTML.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}

function replace(box, ...children) {
  box.replaceChildren(...children.filter((c) => c));
}

function clamp01(x) {
  return Math.max(0, Math.min(1, x));
}

function ramp(t) {
  const x = clamp01(t) * (RAMP.length - 1);
  const i = Math.min(Math.floor(x), RAMP.length - 2);
  const f = x - i;
  return RAMP[i].map((c, k) => Math.round(c + (RAMP[i + 1][k] - c) * f));
}

// 0..1 position on the colour ramp: loss on a log scale from 0.1% to 100%,
// RTT on a log scale from 100us to 100ms.
function position(metric, v) {
  if (metric === "loss") {
    return v <= 0 ? 0 : 0.15 + 0.85 * clamp01(Math.log10(v / 0.1) / 3);
  }
  return clamp01(Math.log10(Math.max(v, 1) / 100) / 3);
}

function colourFor(metric, value, state) {
  if (state === "down") return ALARM;
  if (state === "unknown") return UNKNOWN;
  if (state === "none" || value === null || value === undefined) return NODATA;
  return ramp(position(metric, value));
}

const rgb = (c) => `rgb(${c[0]},${c[1]},${c[2]})`;

function fmtValue(metric, v) {
  if (v === null || v === undefined) return "no data";
  if (metric === "loss") return `loss ${v < 0.01 && v > 0 ? v.toExponential(1) : +v.toFixed(2)}%`;
  return `p99 ${fmtUs(v)}`;
}

function fmtUs(us) {
  if (us === null || us === undefined || us === 0) return "–";
  if (us >= 1e6) return `${(us / 1e6).toFixed(2)} s`;
  if (us >= 1000) return `${(us / 1000).toFixed(us >= 1e4 ? 1 : 2)} ms`;
  return `${us.toFixed(us >= 100 ? 0 : 1)} µs`;
}

function fmtDur(ms) {
  const s = Math.round(ms / 1000);
  if (s < 1) return "under a second";
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

function fmtAge(ms) {
  if (ms < 1500) return "just now";
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s ago`;
  return `${Math.round(s / 60)}m ago`;
}

function fmtClock(t) {
  const d = new Date(t);
  const p = (x) => String(x).padStart(2, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

async function getJSON(path) {
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), fetchTimeoutMs());
  try {
    const r = await fetch(path, { signal: ctl.signal, cache: "no-store" });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      const e = new Error(body.error || `HTTP ${r.status}`);
      e.status = r.status;
      throw e;
    }
    return body;
  } finally {
    clearTimeout(t);
  }
}

// ---- ordering ---------------------------------------------------------------------------

function badness(st) {
  return st === "down" ? 3 : st === "degraded" ? 2 : st === "unknown" ? 1 : 0;
}

function permutation(m) {
  const n = m.nodes.length;
  const idx = [...Array(n).keys()];
  if (view.order !== "worst") return idx;
  const score = new Array(n).fill(0);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const b = badness(m.states[i * n + j]);
      score[i] += b;
      score[j] += b;
    }
  }
  // Same order on both axes, so a broken node stays a cross (now at the top left).
  return idx.sort((a, b) => score[b] - score[a] || (m.nodes[a] < m.nodes[b] ? -1 : 1));
}

// ---- cells and their marks --------------------------------------------------------------------

// Sizes `canvas` to w x h CSS pixels and paints it white. Crisp on high-DPI screens: the backing
// store has device pixels, drawing uses CSS pixels. Returns the device pixel ratio.
function clearCanvas(canvas, ctx, w, h) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  canvas.style.width = `${w}px`;
  canvas.style.height = `${h}px`;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, w, h);
  return dpr;
}

// Fills one cell and draws its state mark, so colour is never the only signal: a white cross on
// DOWN, dark hatching and a border on DEGRADED, a "?" on UNKNOWN. Returns the mark drawn
// ("cross", "hatch", "query") or null (healthy, or a cell too small to carry one).
function drawCell(ctx, x, y, size, colour, state) {
  ctx.fillStyle = rgb(colour);
  ctx.fillRect(x, y, size, size);
  if (size < MARK_MIN) return null;
  if (state === "down") {
    const pad = Math.max(1, size * 0.2);
    ctx.save();
    ctx.strokeStyle = "#ffffff";
    ctx.lineWidth = Math.max(1.5, size / 8);
    ctx.lineCap = "round";
    ctx.beginPath();
    ctx.moveTo(x + pad, y + pad);
    ctx.lineTo(x + size - pad, y + size - pad);
    ctx.moveTo(x + size - pad, y + pad);
    ctx.lineTo(x + pad, y + size - pad);
    ctx.stroke();
    ctx.restore();
    return "cross";
  }
  if (state === "degraded") {
    ctx.save();
    ctx.beginPath();
    ctx.rect(x, y, size, size);
    ctx.clip();
    ctx.strokeStyle = "rgba(29,35,48,0.75)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    const step = Math.max(3, Math.round(size / 4));
    for (let d = -size; d < size; d += step) {
      ctx.moveTo(x + d, y + size);
      ctx.lineTo(x + d + size, y);
    }
    ctx.stroke();
    ctx.lineWidth = Math.max(1, Math.round(size / 12));
    ctx.strokeRect(x + ctx.lineWidth / 2, y + ctx.lineWidth / 2, size - ctx.lineWidth, size - ctx.lineWidth);
    ctx.restore();
    return "hatch";
  }
  if (state === "unknown") {
    ctx.save();
    ctx.fillStyle = "#ffffff";
    ctx.font = `bold ${Math.max(6, Math.round(size * 0.75))}px system-ui, sans-serif`;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText("?", x + size / 2, y + size / 2 + 0.5);
    ctx.restore();
    return "query";
  }
  return null;
}

// ---- panels (one heatmap per network shown) --------------------------------------------------

function makePanel(network) {
  const title = el("h2", { class: "panel-title" }, `${network} network`);
  const canvas = el("canvas", { class: "heatmap", "aria-label": `connectivity heatmap, ${network} network` });
  const empty = el("div", { class: "empty", hidden: "" });
  const tip = el("div", { class: "tip", hidden: "" });
  const box = el("div", { class: "panel", "data-network": network }, title, empty, canvas, tip);
  const p = { network, box, title, canvas, empty, tip, matrix: null, perm: [], cell: 0, left: 0, top: 0, dpr: 1, marks: [] };
  canvas.addEventListener("mousemove", (ev) => hover(p, ev));
  canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
  canvas.addEventListener("click", (ev) => clickCell(p, ev));
  return p;
}

function ensurePanels() {
  const nets = networksShown();
  if (view.panels.map((p) => p.network).join() === nets.join()) return;
  view.panels = nets.map(makePanel);
  const maps = $("maps");
  replace(maps, ...view.panels.map((p) => p.box));
  maps.classList.toggle("both", nets.length > 1);
}

// The space one panel may use: the window below the map's top edge, beside the details panel,
// split between the panels when both networks are shown (side by side when wide enough).
function available() {
  const maps = $("maps");
  const rect = maps.getBoundingClientRect();
  let w = Math.max(160, maps.clientWidth);
  let h = Math.max(160, window.innerHeight - rect.top - 20);
  // Narrow window (style.css puts the details panel below the map): leave part of it in view.
  if (window.innerWidth <= 900) h = Math.max(160, Math.min(h, Math.round(window.innerHeight * 0.6)));
  const k = view.panels.length;
  if (k > 1) {
    if (w >= h) w = Math.floor((w - 16 * (k - 1)) / k);
    else h = Math.floor((h - 16 * (k - 1)) / k);
  }
  // The panel's title line.
  return { w, h: h - (k > 1 ? 28 : 0) };
}

function fontPx(cell) {
  return Math.max(9, Math.min(13, Math.floor(cell * 0.75)));
}

function layout(ctx, m, n) {
  const { w, h } = available();
  const side = Math.min(w, h);
  let cell = Math.floor(side / Math.max(n, 1));
  let labels = cell >= 10;
  let font = fontPx(cell);
  let left = STRIP;
  if (labels) {
    ctx.font = `${font}px system-ui, sans-serif`;
    left = 0;
    for (const name of m.nodes) left = Math.max(left, ctx.measureText(name).width);
    left = Math.ceil(Math.min(left, 180)) + 10;
    cell = Math.floor((side - left) / Math.max(n, 1));
    labels = cell >= 10;
    if (!labels) {
      left = STRIP;
      cell = Math.floor((side - STRIP) / Math.max(n, 1));
    }
  }
  cell = Math.max(1, Math.min(MAX_CELL, cell));
  font = fontPx(cell);
  return { cell, labels, left, top: left, font };
}

function draw() {
  let cells = 0;
  for (const p of view.panels) cells += drawPanel(p);
  return cells;
}

function drawPanel(p) {
  const m = p.matrix;
  const canvas = p.canvas;
  const n = m ? m.nodes.length : 0;
  p.title.hidden = view.panels.length < 2;
  p.empty.hidden = !m || n > 0;
  if (m && n === 0 && m.refused) {
    // A zone too big for one grid: the aggregator's message says so; the node table still shows it.
    p.empty.textContent = `No matrix for this zone: ${m.refused}`;
  } else if (m && n === 0 && view.large && view.zone !== null) {
    p.empty.textContent = `No nodes of zone ${zoneLabel(view.zone)} on the ${p.network} network.`;
  } else if (m && n === 0) {
    const other = NETWORKS.filter((x) => x !== p.network && view.agents && view.agents[x] > 0);
    p.empty.textContent = `No agents on the ${p.network} network yet.` +
      (other.length ? ` The ${other[0]} network has ${view.agents[other[0]]} (switch network above).` : "");
  }
  canvas.hidden = n === 0;
  p.marks = [];
  if (!m || n === 0) return 0;
  p.perm = permutation(m);
  const ctx = canvas.getContext("2d");
  const { cell, labels, left, top, font } = layout(ctx, m, n);
  const dpr = clearCanvas(canvas, ctx, left + n * cell + 1, top + n * cell + 1);
  Object.assign(p, { cell, left, top, dpr });
  const gap = cell >= 6 ? 1 : 0;
  let cells = 0;
  for (let r = 0; r < n; r++) {
    const i = p.perm[r];
    for (let c = 0; c < n; c++) {
      const j = p.perm[c];
      const k = i * n + j;
      const st = m.states[k];
      const mark = drawCell(ctx, left + c * cell, top + r * cell, cell - gap, colourFor(m.metric, m.values[k], st), st);
      if (st === "down" || st === "degraded" || st === "unknown") p.marks.push({ r, c, state: st, mark });
      cells++;
    }
  }
  p.alarmStrips = [];
  if (!labels) drawStrips(ctx, m, n, p);
  if (labels) {
    ctx.font = `${font}px system-ui, sans-serif`;
    ctx.fillStyle = INK;
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    for (let r = 0; r < n; r++) {
      ctx.fillText(clip(ctx, m.nodes[p.perm[r]], left - 10), left - 5, top + r * cell + cell / 2);
    }
    ctx.save();
    ctx.translate(left, top);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "left";
    for (let c = 0; c < n; c++) {
      ctx.fillText(clip(ctx, m.nodes[p.perm[c]], top - 10), 5, c * cell + cell / 2);
    }
    ctx.restore();
  }
  const sel = view.selected;
  if (sel && (sel.network || view.panels[0].network) === p.network) outlineSelected(ctx, p);
  outlineFocus(ctx, p);
  return cells;
}

// One mark per row (the node as a source) and per column (as a target): the alarm colour when
// most of its edges are DOWN, grey when most are UNKNOWN, else the colour of its median value.
// Per-node, not worst-cell: with one broken node every row has one DOWN cell.
function drawStrips(ctx, m, n, p) {
  const { cell, left, top } = p;
  const summarise = (cells) => {
    let down = 0;
    let unknown = 0;
    let edges = 0;
    const vals = [];
    for (const k of cells) {
      // Only cells with an edge count: under a probe budget most pairs have none.
      if (m.states[k] === "none" || m.states[k] === undefined) continue;
      edges++;
      if (m.states[k] === "down") down++;
      else if (m.states[k] === "unknown") unknown++;
      else if (m.values[k] !== null && m.values[k] !== undefined) vals.push(m.values[k]);
    }
    const total = edges || 1;
    if (down * 2 >= total) return { colour: ALARM, loud: true };
    if (unknown * 2 >= total) return { colour: UNKNOWN, loud: true };
    if (!vals.length) return { colour: NODATA, loud: false };
    vals.sort((a, b) => a - b);
    const median = vals[Math.floor(vals.length / 2)];
    return { colour: ramp(position(m.metric, median)), loud: position(m.metric, median) >= 0.5 };
  };
  const marks = [];
  for (let x = 0; x < n; x++) {
    const row = [];
    const col = [];
    for (let y = 0; y < n; y++) {
      if (y === x) continue;
      row.push(p.perm[x] * n + p.perm[y]);
      col.push(p.perm[y] * n + p.perm[x]);
    }
    marks.push({ axis: "row", x, ...summarise(row) }, { axis: "col", x, ...summarise(col) });
  }
  // Quiet marks first, so loud ones are drawn on top, at least 4 px thick.
  marks.sort((a, b) => a.loud - b.loud);
  // For the self-tests: the nodes whose strip mark is in the alarm colour, per axis.
  p.alarmStrips = marks.filter((mk) => mk.colour === ALARM).map((mk) => `${mk.axis} ${m.nodes[p.perm[mk.x]]}`);
  for (const { axis, x, colour, loud } of marks) {
    ctx.fillStyle = rgb(colour);
    const size = loud ? Math.max(cell, 4) : cell;
    const at = x * cell + cell / 2 - size / 2;
    if (axis === "row") ctx.fillRect(0, top + at, STRIP - 3, size);
    else ctx.fillRect(left + at, 0, size, STRIP - 3);
  }
}

function clip(ctx, s, width) {
  if (ctx.measureText(s).width <= width) return s;
  while (s.length > 1 && ctx.measureText(`${s}…`).width > width) s = s.slice(0, -1);
  return `${s}…`;
}

function outlineSelected(ctx, p) {
  const m = p.matrix;
  const r = p.perm.indexOf(m.nodes.indexOf(view.selected.src));
  const c = p.perm.indexOf(m.nodes.indexOf(view.selected.dst));
  if (r < 0 || c < 0) return;
  ctx.strokeStyle = INK;
  ctx.lineWidth = 2;
  ctx.strokeRect(p.left + c * p.cell - 1, p.top + r * p.cell - 1, p.cell + 1, p.cell + 1);
}

function swatch(state, colour) {
  const size = 16;
  const dpr = window.devicePixelRatio || 1;
  const c = el("canvas", { class: "sw" });
  c.width = size * dpr;
  c.height = size * dpr;
  c.style.width = `${size}px`;
  c.style.height = `${size}px`;
  const ctx = c.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  drawCell(ctx, 0, 0, size, colour, state);
  return c;
}

function legend() {
  const metric = view.panels[0] && view.panels[0].matrix ? view.panels[0].matrix.metric : view.metric;
  const scale = metric === "p99" ? ["p99 100 µs", "100 ms"] : ["loss 0%", "100%"];
  const r = el("span", { class: "ramp" });
  r.style.background = `linear-gradient(90deg,${RAMP.map(rgb).join(",")})`;
  const mid = ramp(0.6);
  replace($("legend"),
    el("span", {}, scale[0], r, scale[1]),
    el("span", {}, swatch("down", ALARM), "DOWN (cross)"),
    el("span", {}, swatch("degraded", mid), "DEGRADED (hatched)"),
    el("span", {}, swatch("unknown", UNKNOWN), "UNKNOWN, stale (?)"),
    el("span", {}, swatch("none", NODATA), "no edge"));
}

function cellAt(p, ev) {
  const m = p.matrix;
  if (!m) return null;
  const rect = p.canvas.getBoundingClientRect();
  const x = ev.clientX - rect.left - p.left;
  const y = ev.clientY - rect.top - p.top;
  const n = m.nodes.length;
  const c = Math.floor(x / p.cell);
  const r = Math.floor(y / p.cell);
  if (x < 0 || y < 0 || r >= n || c >= n) return null;
  const i = p.perm[r];
  const j = p.perm[c];
  const k = i * n + j;
  return { src: m.nodes[i], dst: m.nodes[j], value: m.values[k], state: m.states[k], x, y };
}

function hover(p, ev) {
  const c = cellAt(p, ev);
  const tip = p.tip;
  if (!c) {
    tip.hidden = true;
    return;
  }
  tip.hidden = false;
  replace(tip,
    el("div", {}, el("b", {}, c.src), " → ", el("b", {}, c.dst), ` (${p.network})`),
    el("div", {}, `${fmtValue(p.matrix.metric, c.value)} · ${c.state.toUpperCase()}`));
  const box = p.box.getBoundingClientRect();
  tip.style.left = `${ev.clientX - box.left + 14}px`;
  tip.style.top = `${ev.clientY - box.top + 14}px`;
}

function clickCell(p, ev) {
  const c = cellAt(p, ev);
  if (!c || c.src === c.dst) return;
  view.selected = { src: c.src, dst: c.dst, network: p.network };
  const u = new URL(location.href);
  u.searchParams.set("src", c.src);
  u.searchParams.set("dst", c.dst);
  if (view.panels.length > 1) u.searchParams.set("edge_network", p.network);
  else u.searchParams.delete("edge_network");
  history.replaceState(null, "", u);
  replace($("details"), el("h2", {}, `${c.src} → ${c.dst}`), el("p", { class: "hint" }, "loading…"));
  draw();
  showDetails();
}

// ---- summary, status, staleness -------------------------------------------------------

function renderSummary(s) {
  const down = el("b", s.edges_down ? { class: "down" } : {}, `${s.edges_down} down`);
  replace($("summary"),
    el("b", {}, String(s.agents_connected)), `/${s.agents_known} agents · `,
    el("b", {}, String(s.edges)), ` edges: ${s.edges_up} up, ${s.edges_degraded} degraded, `,
    down, `, ${s.edges_unknown} unknown`);
}

// The aggregator's diagnosis on top of the map: one line, healthy or the culprits it names.
function renderDiagnosis(d) {
  const box = $("diagnosis");
  box.hidden = false;
  box.className = d.healthy ? "diagnosis" : "diagnosis culprits";
  $("diagnosis-badge").textContent = d.healthy ? "HEALTHY" : "DIAGNOSIS";
  const more = d.culprits_omitted ? ` (and ${d.culprits_omitted} more)` : "";
  $("diagnosis-text").textContent = d.summary + more;
}

function tick() {
  const age = view.lastOk ? Date.now() - view.lastOk : Infinity;
  const stale = view.failures > 0 || age > staleAfterMs();
  $("stale").hidden = !stale || !view.lastOk;
  $("stale-age").textContent = view.lastOk ? `(last update ${fmtAge(age)})` : "";
  const st = $("status");
  if (!view.lastOk) {
    st.textContent = view.failures ? "cannot reach the aggregator, retrying…" : "connecting…";
    st.className = "status";
  } else if (stale) {
    st.textContent = `stale · updated ${fmtAge(age)}`;
    st.className = "status";
  } else {
    st.textContent = `live · updated ${fmtAge(age)}`;
    st.className = "status live";
  }
}

// ---- edge details -------------------------------------------------------------------------

function edgeQuery(sel) {
  const net = sel.network || view.panels[0].network;
  const q = new URLSearchParams({
    source: sel.src,
    target: sel.dst,
    source_network: net,
    target_network: net,
  });
  return `/api/v1/edge?${q}`;
}

async function showDetails() {
  const sel = view.selected;
  if (!sel || !view.panels.length) return;
  const box = $("details");
  try {
    const e = await getJSON(edgeQuery(sel));
    if (view.selected !== sel) return;
    renderDetails(box, e);
  } catch (err) {
    if (view.selected !== sel) return;
    replace(box, el("h2", {}, `${sel.src} → ${sel.dst}`), el("p", { class: "error" }, err.message));
  }
}

function renderDetails(box, e) {
  const down = e.state === "down";
  // A DOWN edge has had no replies since its state changed: its recent percentiles describe the
  // time before the cut, so they are not shown as if current.
  const since = Date.now() - e.state_age_ms;
  const rtt = (us) => (down ? "—" : fmtUs(us));
  const badge = el("span", { class: `badge ${e.state}` }, e.state.toUpperCase());
  const rows = [
    ["state", [badge, ` for ${fmtDur(e.state_age_ms)}`]],
    ["target", [`${e.target_address} (${e.target_network})`]],
    ["last report", [e.sent_total ? fmtAge(e.last_seen_age_ms) : "never"]],
    ["loss 10s / 1m / 10m", [`${(e.loss_10s_pct || 0).toFixed(2)}% / ${e.loss_1m_pct.toFixed(2)}% / ${e.loss_10m_pct.toFixed(2)}%`]],
    ["p50", [rtt(e.p50_us)]],
    ["p90", [rtt(e.p90_us)]],
    ["p99", [rtt(e.p99_us)]],
    ["p99.9", [rtt(e.p999_us)]],
    ["worst p99, 10m", [fmtUs(e.p99_10m_us)]],
    ["sent / received", [`${e.sent_total} / ${e.received_total}`]],
    ["dup / reordered / late", [`${e.duplicates_total} / ${e.reordered_total} / ${e.late_total}`]],
    ["ICMP errors", [icmpErrors(e)]],
    ["refused sends", [`${e.send_errors_total || 0}`]],
  ];
  const table = el("table", {}, ...rows.map(([k, v]) => el("tr", { "data-row": k }, el("td", {}, k), el("td", { class: "num" }, ...v))));
  let note = null;
  if (down) {
    note = el("p", { class: "down-note" }, `no replies since ${fmtClock(since)} (${fmtDur(e.state_age_ms)} ago): RTT percentiles are not shown`);
  } else if (e.state === "unknown") {
    note = el("p", { class: "hint" }, `no reports from the source since ${fmtClock(since)}: the figures below are the last it sent`);
  }
  const extra = [];
  if (e.expected_down) extra.push(el("p", { class: "hint" }, "planned outage: the target node is cordoned, drained or being deleted"));
  if (e.target_node_ready) extra.push(el("p", { class: "hint" }, `target node Ready: ${e.target_node_ready}`));
  if (e.mtu_blackhole_payload) {
    extra.push(el("p", { class: "down-note", "data-mtu": String(e.mtu_blackhole_payload) },
      `MTU black hole: ${e.mtu_blackhole_payload}-byte payloads are lost or need fragmentation while small probes pass`));
  }
  const hist = historyCharts(e.history || []);
  replace(box, el("h2", {}, `${e.source_node} → ${e.target_node}`), note, table, ...extra, ...hist);
}

// The ICMP error total with the latest kind and next-hop MTU, when there is one.
function icmpErrors(e) {
  if (!e.icmp_errors_total) return "0";
  let s = `${e.icmp_errors_total}, last ${(e.last_icmp_error || "none").replace(/_/g, " ")}`;
  if (e.last_mtu) s += ` (next-hop MTU ${e.last_mtu})`;
  return s;
}

// Five two-minute slots (minutes_ago 0, 2, … 8), oldest on the left.
function historySlots(h) {
  const slots = new Array(5).fill(null);
  for (const m of h) if (m.minutes_ago < 10) slots[4 - Math.floor(m.minutes_ago / 2)] = m;
  return slots;
}

// A round upper bound for an axis: 1, 2, 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const f of [1, 2, 5, 10]) if (f * p >= v) return f * p;
  return 10 * p;
}

function historyCharts(h) {
  const slots = historySlots(h);
  const maxLoss = Math.max(0, ...slots.map((m) => (m ? m.loss_pct : 0)));
  const maxP99 = Math.max(0, ...slots.map((m) => (m && m.p99_us ? m.p99_us : 0)));
  const loss = {
    title: "loss per 2 minutes",
    unit: "%",
    max: Math.min(100, niceMax(Math.max(maxLoss, 1))),
    value: (m) => m.loss_pct,
    fmt: (v) => `${+v.toFixed(1)}%`,
    bad: (m) => m.lost > 0,
  };
  const p99 = {
    title: "worst p99 per 2 minutes",
    unit: "RTT",
    max: niceMax(Math.max(maxP99, 100)),
    value: (m) => m.p99_us,
    fmt: (v) => (v === 0 ? "0" : fmtUs(v)),
    bad: () => false,
  };
  const drawn = [];
  const out = [el("h3", { class: "hist-title" }, "last 10 minutes")];
  for (const spec of [loss, p99]) {
    const canvas = el("canvas", { class: "hist-chart", "aria-label": spec.title });
    const unit = spec.unit === "%" ? "%" : "µs / ms; × = no replies in those 2 minutes";
    out.push(el("div", { class: "hist-caption" }, `${spec.title} (${unit})`), canvas);
    drawn.push({ spec, canvas });
  }
  // Drawn once the canvases are in the document and have a width.
  requestAnimationFrame(() => {
    view.history = drawn.map(({ spec, canvas }) => drawHistory(canvas, slots, spec));
  });
  return out;
}

// A bar per two minutes with a y axis (0 and the maximum, with units), an x axis labelled
// "-10 min" … "now", and the minutes without probes marked "no probes".
function drawHistory(canvas, slots, spec) {
  // The details panel's content width (not more: the canvas would widen the panel it sits in).
  const box = $("details");
  const cs = getComputedStyle(box);
  const inner = box.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
  const w = Math.max(200, Math.floor(inner) - 2);
  const h = 110;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  canvas.style.width = `${w}px`;
  canvas.style.height = `${h}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.font = "10px system-ui, sans-serif";
  const yLabels = [spec.fmt(spec.max), spec.fmt(spec.max / 2), spec.fmt(0)];
  let left = 0;
  for (const l of yLabels) left = Math.max(left, ctx.measureText(l).width);
  left = Math.ceil(left) + 8;
  const top = 6;
  const bottom = h - 18;
  const right = w - 6;
  const plotH = bottom - top;
  // Grid and y labels.
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  ctx.fillStyle = "#667085";
  for (const [i, l] of yLabels.entries()) {
    const y = top + (plotH * i) / 2;
    ctx.fillText(l, left - 4, y);
    ctx.fillStyle = "#eef0f4";
    ctx.fillRect(left, Math.round(y), right - left, 1);
    ctx.fillStyle = "#667085";
  }
  // Bars.
  const slotW = (right - left) / slots.length;
  let bars = 0;
  let gaps = 0;
  for (const [i, m] of slots.entries()) {
    const x = left + i * slotW + 1;
    if (!m) continue;
    const v = spec.value(m);
    if (v === null || v === undefined) {
      // Probes sent, no reply measured: a grey "×" on the baseline, never a zero bar.
      ctx.save();
      ctx.fillStyle = "#8c8c8c";
      ctx.textAlign = "center";
      ctx.textBaseline = "bottom";
      ctx.fillText("×", x + slotW / 2 - 1, bottom - 1);
      ctx.restore();
      gaps++;
      continue;
    }
    const bh = Math.max(1, (plotH * Math.min(v, spec.max)) / spec.max);
    ctx.fillStyle = spec.bad(m) ? rgb(ALARM) : "#4a90d9";
    ctx.fillRect(x, bottom - bh, slotW - 2, bh);
    bars++;
  }
  // Axes.
  ctx.fillStyle = INK;
  ctx.fillRect(left, top, 1, plotH + 1);
  ctx.fillRect(left, bottom, right - left, 1);
  // Time labels.
  const xLabels = [["-10 min", left, "left"], ["-5 min", left + (right - left) / 2, "center"], ["now", right, "right"]];
  ctx.fillStyle = "#667085";
  ctx.textBaseline = "top";
  for (const [l, x, align] of xLabels) {
    ctx.textAlign = align;
    ctx.fillText(l, x, bottom + 4);
    ctx.fillRect(Math.round(x), bottom, 1, 3);
  }
  return {
    title: spec.title,
    unit: spec.unit,
    x_axis: true,
    y_axis: true,
    x_labels: xLabels.map(([l]) => l),
    y_labels: yLabels,
    bars,
    no_reply_minutes: gaps,
  };
}

// ---- the loop -------------------------------------------------------------------------------

// Agents per network: the page opens on the networks that have agents (without ?network=: both
// when both have, else the one that has; pod when none has yet, until one has) and chooses the
// zone view when a network shown has more nodes than a readable grid.
async function countAgents() {
  const r = await getJSON("/api/v1/nodes");
  const a = r.agents_by_network || {};
  view.agents = { pod: a.pod || 0, host: a.host || 0 };
  view.recount = false;
  if (!view.auto || view.chosen) return;
  const pick = view.agents.pod && view.agents.host ? "both" : view.agents.host ? "host" : "pod";
  view.chosen = view.agents.pod > 0 || view.agents.host > 0;
  if (pick !== view.network) {
    view.network = pick;
    $("network").value = pick;
  }
}

// The summary line; a change in the number of agents counts them again (the cluster may have
// grown past the size where the zone view takes over, or shrunk below it).
function onSummary(s) {
  if (view.agentsKnown !== null && s.agents_known !== view.agentsKnown) view.recount = true;
  view.agentsKnown = s.agents_known;
  renderSummary(s);
}

// One poll. Each answer is drawn as soon as it arrives (a slow diagnosis does not hold the node
// table back); the poll counts as good when every request of it succeeded.
async function poll() {
  clearTimeout(view.timer);
  let ok = false;
  try {
    if (!view.agents || view.recount || (view.auto && !view.chosen)) await countAgents();
    ensurePanels();
    view.large = isLarge();
    showMode();
    const zoomed = view.large && view.zone !== null;
    const withMaps = !view.large || zoomed;
    const q = (net) => {
      const o = { metric: view.metric, network: net };
      if (zoomed) o.zone = zoneParam(view.zone);
      return new URLSearchParams(o);
    };
    const diagNet = view.network === "both" ? "any" : view.network;
    const matrix = (p) => getJSON(`/api/v1/matrix?${q(p.network)}`).catch((err) => {
      // Too many nodes for one grid: the aggregator asks for a zone.
      if (!view.large && err.status === 400 && /zone/i.test(err.message)) err.refused = true;
      // One zone too big for a grid: say so in the panel and keep the zone's node table.
      if (zoomed && err.status === 400) return { nodes: [], values: [], states: [], metric: view.metric, refused: err.message };
      throw err;
    });
    const [, , mats] = await Promise.all([
      getJSON("/api/v1/summary").then(onSummary),
      getJSON(`/api/v1/diagnose?${new URLSearchParams({ network: diagNet, limit: "20" })}`).then(renderDiagnosis),
      withMaps ? Promise.all(view.panels.map(matrix)) : Promise.resolve([]),
      view.large ? loadOverview() : null,
    ]);
    view.lastOk = Date.now();
    view.failures = 0;
    legend();
    let cells = 0;
    if (withMaps) {
      view.panels.forEach((p, i) => { p.matrix = mats[i]; });
      cells = draw();
      if (view.selected) showDetails();
    }
    if (selftest === "1" && !view.selftestDone && largest() > 0) runSelftest(cells);
    if (selftest === "scale" && !view.selftestDone && view.large && view.zone === null && view.zoneGrid) runScaleSelftest();
    ok = true;
  } catch (err) {
    if (selftest) console.log(`echomesh-poll-failed ${err.message}`);
    if (err.refused) {
      view.refused = true;
      view.timer = setTimeout(poll, 0);
      return;
    }
    if (err.status >= 400 && err.status < 500) {
      // The request itself is wrong (e.g. ?metric=bogus): retrying will not help.
      $("status").textContent = `error: ${err.message}`;
      view.failures = 0;
      view.timer = setTimeout(poll, MAX_BACKOFF_MS);
      return;
    }
    view.failures += 1;
  }
  tick();
  if (selftest === "reconnect") recordPoll(ok);
  const delay = view.failures ? Math.min(POLL_MS * 2 ** view.failures, MAX_BACKOFF_MS) : pollMs();
  view.timer = setTimeout(poll, delay);
}

function recordPoll(ok) {
  const log = view.pollLog;
  log.push({ ok, stale_banner: !$("stale").hidden, status: $("status").textContent });
  if (view.selftestDone) return;
  // The log so far is always there, so a run that never reconnects shows what happened.
  const pre = $("selftest");
  pre.textContent = JSON.stringify({ polls: log });
  const first = log.findIndex((p) => p.ok);
  const lost = first < 0 ? -1 : log.findIndex((p, i) => i > first && !p.ok);
  const back = lost < 0 ? -1 : log.findIndex((p, i) => i > lost && p.ok);
  if (back < 0) return;
  pre.dataset.done = "1";
  view.selftestDone = true;
}

const isWhite = (p) => p[0] >= 200 && p[1] >= 200 && p[2] >= 200;
const near = (want, p) => want.every((v, i) => Math.abs(v - p[i]) <= 2);

// Reads back the drawn pixels so a headless browser test can check the picture, not just the DOM:
// DOWN cells in the alarm colour (sampled off their cross), the cross itself in white, and the
// mark drawn on every cell that is not UP.
async function runSelftest(cells) {
  view.selftestDone = true;
  const p = view.panels.find((x) => x.matrix && x.matrix.nodes.length > 0);
  const m = p.matrix;
  const n = m.nodes.length;
  const ctx = p.canvas.getContext("2d");
  const px = (fx, fy, r, c) => {
    const x = Math.floor((p.left + c * p.cell + fx * p.cell) * p.dpr);
    const y = Math.floor((p.top + r * p.cell + fy * p.cell) * p.dpr);
    return ctx.getImageData(x, y, 1, 1).data;
  };
  const down = [];
  let alarmOk = 0;
  let crossOk = 0;
  const markCounts = { cross: 0, hatch: 0, query: 0, none: 0 };
  const marks = [];
  for (const mk of p.marks) {
    markCounts[mk.mark || "none"]++;
    marks.push({ src: m.nodes[p.perm[mk.r]], dst: m.nodes[p.perm[mk.c]], state: mk.state, mark: mk.mark });
    if (mk.state !== "down") continue;
    // Off the cross: half-way across, a fifth down.
    const fill = px(0.5, 0.2, mk.r, mk.c);
    const ok = near(ALARM, fill);
    if (ok) alarmOk++;
    // On the cross: a third of the way along its first stroke.
    const stroke = mk.mark === "cross" ? px(0.33, 0.33, mk.r, mk.c) : null;
    const crossed = !!stroke && isWhite(stroke);
    if (crossed) crossOk++;
    down.push({
      src: m.nodes[p.perm[mk.r]],
      dst: m.nodes[p.perm[mk.c]],
      rgb: [fill[0], fill[1], fill[2]],
      ok,
      mark: mk.mark,
      cross_pixel_white: crossed,
      r: mk.r,
      c: mk.c,
    });
  }
  const canvasRect = p.canvas.getBoundingClientRect();
  const out = {
    nodes: n,
    cells,
    metric: m.metric,
    network: m.network,
    networks: view.panels.map((x) => x.network),
    panels: view.panels.map((x) => ({
      network: x.network,
      nodes: x.matrix ? x.matrix.nodes.length : 0,
      crosses: x.marks.filter((mk) => mk.mark === "cross").length,
      canvas_css: [Math.round(x.canvas.getBoundingClientRect().width), Math.round(x.canvas.getBoundingClientRect().height)],
    })),
    agents_by_network: view.agents,
    down: down.length,
    down_alarm_coloured: alarmOk,
    down_crossed: crossOk,
    down_cells: down,
    mark_counts: markCounts,
    marks,
    cell_px: p.cell,
    dpr: p.dpr,
    canvas_css: [Math.round(canvasRect.width), Math.round(canvasRect.height)],
    window: [window.innerWidth, window.innerHeight],
    legend: $("legend").textContent,
    stale_banner_hidden: $("stale").hidden,
    diagnosis: $("diagnosis").hidden ? null : $("diagnosis").textContent.replace(/\s+/g, " ").trim(),
    hover: null,
    details: null,
    details_rows: null,
    history: null,
  };
  // Hover over and click the first DOWN cell, as a user would.
  const first = down[0];
  if (first) {
    const at = {
      clientX: canvasRect.left + p.left + first.c * p.cell + p.cell / 2,
      clientY: canvasRect.top + p.top + first.r * p.cell + p.cell / 2,
      bubbles: true,
    };
    p.canvas.dispatchEvent(new MouseEvent("mousemove", at));
    out.hover = p.tip.hidden ? null : p.tip.textContent;
    view.history = null;
    p.canvas.dispatchEvent(new MouseEvent("click", at));
    for (let i = 0; i < 200 && !($("details").querySelector(".badge") && view.history); i++) {
      await new Promise((res) => setTimeout(res, 50));
    }
    out.details = $("details").textContent;
    out.details_rows = {};
    for (const tr of $("details").querySelectorAll("tr")) {
      out.details_rows[tr.dataset.row] = tr.lastChild.textContent;
    }
    out.history = view.history;
  }
  const pre = $("selftest");
  pre.textContent = JSON.stringify(out);
  pre.dataset.done = "1";
}

function init() {
  $("metric").value = view.metric;
  $("network").value = view.network;
  $("order").value = view.order;
  const changed = (ev) => {
    view.metric = $("metric").value;
    view.order = $("order").value;
    const u = new URL(location.href);
    if (ev && ev.target.id === "network") {
      view.network = $("network").value;
      view.auto = false;
      view.selected = null;
      view.pageTokens = [""];
      replace($("details"), el("p", { class: "hint" }, "Click a cell for the edge's details."));
      u.searchParams.delete("src");
      u.searchParams.delete("dst");
      u.searchParams.delete("edge_network");
    }
    u.searchParams.set("metric", view.metric);
    if (!view.auto) u.searchParams.set("network", view.network);
    u.searchParams.set("order", view.order);
    history.replaceState(null, "", u);
    poll();
  };
  for (const id of ["metric", "network", "order"]) $(id).addEventListener("change", changed);
  let pending = false;
  window.addEventListener("resize", () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      if (!$("maps").hidden) draw();
      if (!$("overview").hidden) drawZoneGrid();
    });
  });
  setInterval(tick, 1000);
  poll();
}

init();

// echomesh heatmap: polls the JSON API and draws sources x targets on a canvas.
//
// Why polling and not a stream: a poll is one self-contained request, so a dropped connection,
// an aggregator restart or a proxy timeout all heal the same way (the next poll), and the page
// can say exactly how old its picture is. Why canvas: 500 nodes are 250 000 cells.
"use strict";

const ALARM = [228, 0, 43]; // DOWN, whatever the metric (#e4002b, also in style.css)
const UNKNOWN = [140, 140, 140]; // stale: the source agent stopped reporting
const NODATA = [233, 236, 241]; // no edge (the diagonal, or not probed)
const RAMP = [
  [26, 152, 80],
  [166, 217, 106],
  [254, 224, 139],
  [253, 141, 60],
  [127, 39, 4],
];
const STRIP = 12; // px, the worst-per-row/column strip when names do not fit
const POLL_MS = 2000;
// A 500-node matrix is ~3 MB of JSON: big clusters are polled less often.
const pollMs = () => (view.matrix && view.matrix.nodes.length > 200 ? 3 * POLL_MS : POLL_MS);
const MAX_BACKOFF_MS = 15000;
const staleAfterMs = () => 3 * pollMs() + 1000;
const FETCH_TIMEOUT_MS = 5000;

const params = new URLSearchParams(location.search);
// Self-tests for the headless browser test: "1" checks the drawn pixels, "reconnect" records
// each poll's outcome and the banner until the page has lost and regained the aggregator.
const selftest = params.get("selftest");
const $ = (id) => document.getElementById(id);

const view = {
  metric: params.get("metric") || "loss",
  network: params.get("network") || "pod",
  order: params.get("order") || "name",
  matrix: null,
  perm: [],
  cell: 0,
  left: 0,
  top: 0,
  lastOk: 0,
  failures: 0,
  // ?src=a&dst=b opens that edge's details (shareable links, screenshots).
  selected: params.get("src") && params.get("dst") ? { src: params.get("src"), dst: params.get("dst") } : null,
  timer: null,
  selftestDone: false,
  pollLog: [],
};

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

async function getJSON(path) {
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
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

// ---- drawing ----------------------------------------------------------------------------

function layout(n) {
  // Leave room for the details panel on the right and the header and labels above.
  const avail = Math.max(200, Math.min(window.innerWidth - 460, window.innerHeight - 260));
  const cell = Math.max(1, Math.min(40, Math.floor(avail / Math.max(n, 1))));
  const labels = cell >= 10;
  return { cell, labels };
}

function draw() {
  const m = view.matrix;
  const canvas = $("heatmap");
  const n = m ? m.nodes.length : 0;
  $("empty").hidden = n > 0;
  canvas.hidden = n === 0;
  if (!m || n === 0) return 0;
  view.perm = permutation(m);
  const { cell, labels } = layout(n);
  const ctx = canvas.getContext("2d");
  ctx.font = "11px system-ui, sans-serif";
  // Too small for names: a strip along each axis marks the worst cell of every row and column,
  // drawn at least 4 px thick, so a broken node stands out even at 1-2 px cells.
  let left = labels ? 0 : STRIP;
  if (labels) {
    for (const name of m.nodes) left = Math.max(left, ctx.measureText(name).width);
    left = Math.ceil(Math.min(left, 160)) + 8;
  }
  const top = left;
  const w = left + n * cell + 1;
  const h = top + n * cell + 1;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  canvas.style.width = `${w}px`;
  canvas.style.height = `${h}px`;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, w, h);
  Object.assign(view, { cell, left, top, dpr });
  const gap = cell >= 6 ? 1 : 0;
  let cells = 0;
  for (let r = 0; r < n; r++) {
    const i = view.perm[r];
    for (let c = 0; c < n; c++) {
      const j = view.perm[c];
      const k = i * n + j;
      ctx.fillStyle = rgb(colourFor(m.metric, m.values[k], m.states[k]));
      ctx.fillRect(left + c * cell, top + r * cell, cell - gap, cell - gap);
      cells++;
    }
  }
  if (!labels) drawStrips(ctx, m, n, cell, left, top);
  if (labels) {
    ctx.fillStyle = "#1d2330";
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    for (let r = 0; r < n; r++) {
      ctx.fillText(clip(ctx, m.nodes[view.perm[r]], left - 8), left - 4, top + r * cell + cell / 2);
    }
    ctx.save();
    ctx.translate(left, top);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "left";
    for (let c = 0; c < n; c++) {
      ctx.fillText(clip(ctx, m.nodes[view.perm[c]], top - 8), 4, c * cell + cell / 2);
    }
    ctx.restore();
  }
  if (view.selected) outlineSelected(ctx);
  return cells;
}

// One mark per row (the node as a source) and per column (as a target): the alarm colour when
// most of its edges are DOWN, grey when most are UNKNOWN, else the colour of its median value.
// Per-node, not worst-cell: with one broken node every row has one DOWN cell.
function drawStrips(ctx, m, n, cell, left, top) {
  const summarise = (cells) => {
    let down = 0;
    let unknown = 0;
    const vals = [];
    for (const k of cells) {
      if (m.states[k] === "down") down++;
      else if (m.states[k] === "unknown") unknown++;
      else if (m.values[k] !== null && m.values[k] !== undefined) vals.push(m.values[k]);
    }
    const total = cells.length || 1;
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
      row.push(view.perm[x] * n + view.perm[y]);
      col.push(view.perm[y] * n + view.perm[x]);
    }
    marks.push({ axis: "row", x, ...summarise(row) }, { axis: "col", x, ...summarise(col) });
  }
  // Quiet marks first, so loud ones are drawn on top, at least 4 px thick.
  marks.sort((a, b) => a.loud - b.loud);
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

function outlineSelected(ctx) {
  const m = view.matrix;
  const r = view.perm.indexOf(m.nodes.indexOf(view.selected.src));
  const c = view.perm.indexOf(m.nodes.indexOf(view.selected.dst));
  if (r < 0 || c < 0) return;
  ctx.strokeStyle = "#1d2330";
  ctx.lineWidth = 2;
  ctx.strokeRect(view.left + c * view.cell - 1, view.top + r * view.cell - 1, view.cell + 1, view.cell + 1);
}

function legend() {
  const stops = RAMP.map(rgb).join(",");
  const scale = view.matrix && view.matrix.metric === "p99"
    ? ["100 µs", "100 ms"] : ["0%", "100% loss"];
  $("legend").innerHTML =
    `<span>${scale[0]}<span class="ramp" style="background:linear-gradient(90deg,${stops})"></span>${scale[1]}</span>` +
    `<span><span class="sw" style="background:${rgb(ALARM)}"></span>DOWN</span>` +
    `<span><span class="sw" style="background:${rgb(UNKNOWN)}"></span>unknown (stale)</span>` +
    `<span><span class="sw" style="background:${rgb(NODATA)}"></span>no edge</span>`;
}

function cellAt(ev) {
  const m = view.matrix;
  if (!m) return null;
  const rect = $("heatmap").getBoundingClientRect();
  const x = ev.clientX - rect.left - view.left;
  const y = ev.clientY - rect.top - view.top;
  const n = m.nodes.length;
  const c = Math.floor(x / view.cell);
  const r = Math.floor(y / view.cell);
  if (x < 0 || y < 0 || r >= n || c >= n) return null;
  const i = view.perm[r];
  const j = view.perm[c];
  const k = i * n + j;
  return { src: m.nodes[i], dst: m.nodes[j], value: m.values[k], state: m.states[k], x, y };
}

// ---- summary, status, staleness -------------------------------------------------------

function renderSummary(s) {
  const down = s.edges_down ? ` class="down"` : "";
  $("summary").innerHTML =
    `<b>${s.agents_connected}</b>/${s.agents_known} agents · <b>${s.edges}</b> edges: ` +
    `${s.edges_up} up, ${s.edges_degraded} degraded, <b${down}>${s.edges_down} down</b>, ${s.edges_unknown} unknown`;
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
  const q = new URLSearchParams({
    source: sel.src,
    target: sel.dst,
    source_network: view.network,
    target_network: view.network,
  });
  return `/api/v1/edge?${q}`;
}

async function showDetails() {
  const sel = view.selected;
  if (!sel) return;
  const box = $("details");
  try {
    const e = await getJSON(edgeQuery(sel));
    if (view.selected !== sel) return;
    box.innerHTML = detailsHtml(e);
  } catch (err) {
    if (view.selected !== sel) return;
    box.innerHTML = `<h2>${esc(sel.src)} → ${esc(sel.dst)}</h2><p class="error">${esc(err.message)}</p>`;
  }
}

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function detailsHtml(e) {
  const rows = [
    ["state", `<span class="badge ${e.state}">${e.state.toUpperCase()}</span> for ${fmtDur(e.state_age_ms)}`],
    ["target", `${esc(e.target_address)} (${e.target_network})`],
    ["last report", e.sent_total ? fmtAge(e.last_seen_age_ms) : "never"],
    ["loss 1m / 10m", `${e.loss_1m_pct.toFixed(2)}% / ${e.loss_10m_pct.toFixed(2)}%`],
    ["p50", fmtUs(e.p50_us)],
    ["p90", fmtUs(e.p90_us)],
    ["p99", fmtUs(e.p99_us)],
    ["p99.9", fmtUs(e.p999_us)],
    ["worst p99, 10m", fmtUs(e.p99_10m_us)],
    ["sent / received", `${e.sent_total} / ${e.received_total}`],
    ["dup / reordered / late", `${e.duplicates_total} / ${e.reordered_total} / ${e.late_total}`],
    ["ICMP errors", `${e.icmp_errors_total}`],
  ];
  const table = rows.map(([k, v]) => `<tr><td>${k}</td><td class="num">${v}</td></tr>`).join("");
  return `<h2>${esc(e.source_node)} → ${esc(e.target_node)}</h2><table>${table}</table>${historyHtml(e.history || [])}`;
}

function historyHtml(h) {
  // Ten one-minute slots, oldest on the left; bar height = loss, red when any probe was lost.
  const slots = new Array(10).fill(null);
  for (const m of h) if (m.minutes_ago < 10) slots[9 - m.minutes_ago] = m;
  const bars = slots.map((m) => {
    if (!m) return `<div style="height:1px;background:#d9dde5" title="no probes"></div>`;
    const pct = Math.max(2, Math.min(100, m.loss_pct));
    const title = `${m.minutes_ago} min ago: ${m.lost}/${m.sent} lost (${m.loss_pct.toFixed(2)}%), worst p99 ${fmtUs(m.p99_us)}`;
    return `<div class="${m.lost ? "lossy" : ""}" style="height:${pct}%" title="${esc(title)}"></div>`;
  }).join("");
  const p99s = slots.map((m) => (m ? fmtUs(m.p99_us) : "–")).join(" · ");
  return `<h3 style="font-size:13px;margin:12px 0 0">last 10 minutes (loss per minute)</h3>` +
    `<div class="hist">${bars}</div><div class="hist-axis"><span>10 min ago</span><span>now</span></div>` +
    `<div class="hist-axis" title="worst report-window p99 per minute"><span>p99: ${p99s}</span></div>`;
}

// ---- the loop -------------------------------------------------------------------------------

async function poll() {
  clearTimeout(view.timer);
  let ok = false;
  const q = new URLSearchParams({ metric: view.metric, network: view.network });
  try {
    const [sum, mat] = await Promise.all([
      getJSON("/api/v1/summary"),
      getJSON(`/api/v1/matrix?${q}`),
    ]);
    view.lastOk = Date.now();
    view.failures = 0;
    view.matrix = mat;
    renderSummary(sum);
    legend();
    const cells = draw();
    if (view.selected) showDetails();
    if (selftest === "1" && !view.selftestDone && mat.nodes.length > 0) runSelftest(cells);
    ok = true;
  } catch (err) {
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
  const first = log.findIndex((p) => p.ok);
  const lost = first < 0 ? -1 : log.findIndex((p, i) => i > first && !p.ok);
  const back = lost < 0 ? -1 : log.findIndex((p, i) => i > lost && p.ok);
  if (back < 0) return;
  const pre = $("selftest");
  pre.textContent = JSON.stringify({ polls: log });
  pre.dataset.done = "1";
  view.selftestDone = true;
}

// Reads back the drawn pixels so a headless browser test can check the picture, not just the DOM.
async function runSelftest(cells) {
  view.selftestDone = true;
  const m = view.matrix;
  const n = m.nodes.length;
  const ctx = $("heatmap").getContext("2d");
  const down = [];
  let alarmOk = 0;
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      const k = view.perm[r] * n + view.perm[c];
      if (m.states[k] !== "down") continue;
      const x = Math.floor((view.left + c * view.cell + view.cell / 2) * view.dpr);
      const y = Math.floor((view.top + r * view.cell + view.cell / 2) * view.dpr);
      const p = ctx.getImageData(x, y, 1, 1).data;
      const ok = ALARM.every((v, i) => Math.abs(v - p[i]) <= 2);
      if (ok) alarmOk++;
      down.push({ src: m.nodes[view.perm[r]], dst: m.nodes[view.perm[c]], rgb: [p[0], p[1], p[2]], ok, r, c });
    }
  }
  const out = {
    nodes: n,
    cells,
    metric: m.metric,
    network: m.network,
    down: down.length,
    down_alarm_coloured: alarmOk,
    down_cells: down,
    stale_banner_hidden: $("stale").hidden,
    hover: null,
    details: null,
  };
  // Hover over and click the first DOWN cell, as a user would.
  const first = down[0];
  if (first) {
    const canvas = $("heatmap");
    const rect = canvas.getBoundingClientRect();
    const at = {
      clientX: rect.left + view.left + first.c * view.cell + view.cell / 2,
      clientY: rect.top + view.top + first.r * view.cell + view.cell / 2,
      bubbles: true,
    };
    canvas.dispatchEvent(new MouseEvent("mousemove", at));
    out.hover = $("tip").hidden ? null : $("tip").textContent;
    canvas.dispatchEvent(new MouseEvent("click", at));
    for (let i = 0; i < 200 && !$("details").querySelector(".badge"); i++) {
      await new Promise((res) => setTimeout(res, 50));
    }
    out.details = $("details").textContent;
  }
  const pre = $("selftest");
  pre.textContent = JSON.stringify(out);
  pre.dataset.done = "1";
}

function init() {
  $("metric").value = view.metric;
  $("network").value = view.network;
  $("order").value = view.order;
  const changed = () => {
    view.metric = $("metric").value;
    view.network = $("network").value;
    view.order = $("order").value;
    const u = new URL(location.href);
    u.searchParams.set("metric", view.metric);
    u.searchParams.set("network", view.network);
    u.searchParams.set("order", view.order);
    if (view.selected) {
      u.searchParams.set("src", view.selected.src);
      u.searchParams.set("dst", view.selected.dst);
    }
    history.replaceState(null, "", u);
    poll();
  };
  for (const id of ["metric", "network", "order"]) $(id).addEventListener("change", changed);
  const canvas = $("heatmap");
  const tip = $("tip");
  canvas.addEventListener("mousemove", (ev) => {
    const c = cellAt(ev);
    if (!c) {
      tip.hidden = true;
      return;
    }
    tip.hidden = false;
    tip.innerHTML = `<b>${esc(c.src)}</b> → <b>${esc(c.dst)}</b> (${view.network})<br>` +
      `${fmtValue(view.matrix.metric, c.value)} · ${c.state.toUpperCase()}`;
    const box = canvas.parentElement.getBoundingClientRect();
    tip.style.left = `${ev.clientX - box.left + 14}px`;
    tip.style.top = `${ev.clientY - box.top + 14}px`;
  });
  canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
  canvas.addEventListener("click", (ev) => {
    const c = cellAt(ev);
    if (!c || c.src === c.dst) return;
    view.selected = { src: c.src, dst: c.dst };
    const u = new URL(location.href);
    u.searchParams.set("src", c.src);
    u.searchParams.set("dst", c.dst);
    history.replaceState(null, "", u);
    $("details").innerHTML = `<h2>${esc(c.src)} → ${esc(c.dst)}</h2><p class="hint">loading…</p>`;
    draw();
    showDetails();
  });
  window.addEventListener("resize", () => draw());
  setInterval(tick, 1000);
  poll();
}

init();

// echomesh heatmap at scale: the zone x zone grid and the node summary, worst first.
//
// Why a separate view: above a few hundred nodes an N x N grid has cells under a pixel, its JSON
// runs to megabytes, and above 1,000 nodes the aggregator refuses it. The zone grid has one cell
// per (source zone, target zone), a handful of zones; the node table holds one page of rows (the
// DOM never has more than PAGE_ROWS of them, however many nodes there are); a click on a zone
// opens that zone's node matrix, which is small again and drawn by app.js like a small cluster's.
//
// Loaded before app.js: only constants and functions here, which call app.js's helpers (el,
// replace, drawCell, colourFor, getJSON, view, ...) when they run, after both scripts loaded.
// Every server string is inserted as text (textContent, text nodes, canvas fillText).
"use strict";

const PAGE_ROWS = 50; // node rows per page: the DOM stays this small at any cluster size
const LARGE_ABOVE = 500; // nodes on a network shown: above, the page opens on the zone grid
const ZONE_CELL_MAX = 72; // px
const ZONE_CELL_MIN = 4; // px

// The zone view is used when the URL asks for it (?view=zones), when the aggregator refused the
// whole matrix, or when a network shown has more nodes than a readable grid; ?view=matrix keeps
// the node matrix up to the aggregator's limit.
function isLarge() {
  if (view.force === "zones" || view.refused) return true;
  if (view.force === "matrix" || !view.agents) return false;
  return Math.max(0, ...networksShown().map((n) => view.agents[n] || 0)) > LARGE_ABOVE;
}

// The network parameter of the roll-ups: both networks at once when both are shown.
const rollupNetwork = () => (view.network === "both" ? "any" : view.network);

// Shows the parts of the page the current mode uses: the zone overview (grid and table), or a
// zone's node matrix with its table below and a way back, or (small clusters) the matrix alone.
function showMode() {
  const zoomed = view.large && view.zone !== null;
  $("overview").hidden = !view.large || zoomed;
  $("maps").hidden = view.large && !zoomed;
  $("axis-note").hidden = view.large && !zoomed;
  $("nodes").hidden = !view.large;
  const crumbs = $("crumbs");
  crumbs.hidden = !view.large;
  if (!view.large) {
    crumbs.dataset.key = "";
    return;
  }
  // Rebuilt only when the view changes, so a focused button survives the polls.
  const key = zoomed ? `zone ${view.zone}` : "zones";
  if (crumbs.dataset.key === key) return;
  crumbs.dataset.key = key;
  if (!zoomed && !view.selected) replace($("details"), el("p", { class: "hint" }, overviewHint()));
  const back = el("button", { type: "button", class: "crumb", id: "zones-back" }, "All zones");
  back.disabled = !zoomed;
  back.addEventListener("click", zoomOut);
  const parts = [back];
  if (zoomed) parts.push(" › ", el("b", {}, zoneLabel(view.zone)), " · the zone's nodes as sources × targets");
  else parts.push(" · source zone × target zone: click a cell to open the source zone's nodes");
  replace(crumbs, ...parts);
}

const zoneLabel = (z) => (z === "" ? "(unknown)" : z);
// The JSON API's zone parameter: "-" asks for the nodes whose zone is unknown ("" means any zone).
const zoneParam = (z) => (z === "" ? "-" : z);

// Fetches and draws the roll-ups of one poll: the zone grid (overview only) and the current page
// of the node table (filtered to the zone when zoomed in).
async function loadOverview() {
  const zoomed = view.zone !== null;
  const page = async () => {
    const q = { network: rollupNetwork(), limit: String(PAGE_ROWS) };
    if (zoomed) q.zone = zoneParam(view.zone);
    const token = view.pageTokens[view.pageTokens.length - 1];
    if (token) q.page_token = token;
    try {
      return await getJSON(`/api/v1/node-summary?${new URLSearchParams(q)}`);
    } catch (err) {
      // A page token from before the cluster shrank: start again at the worst nodes.
      if (err.status === 400 && token) {
        view.pageTokens = [""];
        delete q.page_token;
        return getJSON(`/api/v1/node-summary?${new URLSearchParams(q)}`);
      }
      throw err;
    }
  };
  const jobs = [page().then(renderNodeTable)];
  if (!zoomed) {
    const q = new URLSearchParams({ network: rollupNetwork() });
    jobs.push(getJSON(`/api/v1/zones?${q}`).then((z) => {
      view.zoneMatrix = z;
      drawZoneGrid();
    }));
  }
  await Promise.all(jobs);
}

// ---- the zone grid ---------------------------------------------------------------------------

// A zone cell's state, told by its mark like a node cell's: DOWN when most of its edges are,
// UNKNOWN when most are stale, DEGRADED (hatched) when any edge is DOWN or DEGRADED.
function zoneState(c) {
  if (!c || !c.edges) return "none";
  if (c.down * 2 >= c.edges) return "down";
  if (c.unknown * 2 >= c.edges) return "unknown";
  if (c.down || c.degraded) return "degraded";
  return "up";
}

function zoneValue(c) {
  if (!c || !c.edges) return null;
  return view.metric === "p99" ? (c.p99_us || null) : c.loss_pct;
}

function zoneCellAt(zm, i, j) {
  return zm.index.get(`${i} ${j}`) || null;
}

function drawZoneGrid() {
  const zm = view.zoneMatrix;
  const box = $("zone-grid");
  if (!zm) return;
  const zones = zm.zones;
  const n = zones.length;
  const at = new Map();
  const rank = new Map(zones.map((z, i) => [z, i]));
  for (const c of zm.cells) {
    const i = rank.get(c.from_zone);
    const j = rank.get(c.to_zone);
    if (i !== undefined && j !== undefined) at.set(`${i} ${j}`, c);
  }
  zm.index = at;
  if (!n) {
    replace(box, el("div", { class: "empty" }, "No edges yet."));
    view.zoneGrid = null;
    return;
  }
  let canvas = box.querySelector("canvas");
  let tip = box.querySelector(".tip");
  if (!canvas) {
    canvas = el("canvas", { class: "heatmap zones", "aria-label": "zone by zone connectivity" });
    tip = el("div", { class: "tip", hidden: "" });
    replace(box, canvas, tip);
    canvas.addEventListener("mousemove", (ev) => zoneHover(ev));
    canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
    canvas.addEventListener("click", (ev) => {
      const hit = zoneHit(ev);
      if (hit) zoomTo(hit.from);
    });
  }
  const ctx = canvas.getContext("2d");
  const font = 12;
  ctx.font = `${font}px system-ui, sans-serif`;
  let left = 0;
  for (const z of zones) left = Math.max(left, ctx.measureText(zoneLabel(z)).width);
  left = Math.ceil(Math.min(left, 160)) + 10;
  const width = Math.max(200, box.clientWidth || $("overview").clientWidth);
  // Leave room below for the node table: the grid takes at most about half the window.
  const height = Math.max(200, Math.round(window.innerHeight * 0.5));
  const side = Math.min(width, height) - left;
  const cell = Math.max(ZONE_CELL_MIN, Math.min(ZONE_CELL_MAX, Math.floor(side / n)));
  const size = left + n * cell + 1;
  clearCanvas(canvas, ctx, size, size);
  const gap = cell >= 6 ? 1 : 0;
  const marks = { cross: 0, hatch: 0, query: 0 };
  let cells = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const c = zoneCellAt(zm, i, j);
      const st = zoneState(c);
      const x = left + j * cell;
      const y = left + i * cell;
      const mark = drawCell(ctx, x, y, cell - gap, colourFor(view.metric, zoneValue(c), st), st);
      if (mark) marks[mark]++;
      // The count of edges not UP, when the cell is big enough to carry it.
      const bad = c ? c.down + c.degraded + c.unknown : 0;
      if (bad && cell >= 40) {
        const label = `${bad}`;
        ctx.font = "bold 11px system-ui, sans-serif";
        const tw = ctx.measureText(label).width + 6;
        ctx.fillStyle = "rgba(255,255,255,0.9)";
        ctx.fillRect(x + cell - gap - tw - 2, y + cell - gap - 16, tw, 14);
        ctx.fillStyle = INK;
        ctx.textAlign = "right";
        ctx.textBaseline = "middle";
        ctx.fillText(label, x + cell - gap - 5, y + cell - gap - 9);
      }
      cells++;
    }
  }
  ctx.font = `${font}px system-ui, sans-serif`;
  ctx.fillStyle = INK;
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  for (let i = 0; i < n; i++) ctx.fillText(clip(ctx, zoneLabel(zones[i]), left - 10), left - 5, left + i * cell + cell / 2);
  ctx.save();
  ctx.translate(left, left);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "left";
  for (let j = 0; j < n; j++) ctx.fillText(clip(ctx, zoneLabel(zones[j]), left - 10), 5, j * cell + cell / 2);
  ctx.restore();
  view.zoneGrid = { canvas, tip, left, cell, n, cells, marks, renders: (view.zoneGrid ? view.zoneGrid.renders : 0) + 1 };
}

// The zone cell under the pointer; a pointer on a row label counts as that row's diagonal cell.
function zoneHit(ev) {
  const g = view.zoneGrid;
  const zm = view.zoneMatrix;
  if (!g || !zm) return null;
  const rect = g.canvas.getBoundingClientRect();
  const x = ev.clientX - rect.left - g.left;
  const y = ev.clientY - rect.top - g.left;
  const i = Math.floor(y / g.cell);
  let j = Math.floor(x / g.cell);
  if (y < 0 || i >= g.n || j >= g.n) return null;
  if (x < 0) j = i;
  return { from: zm.zones[i], to: zm.zones[j], cell: zoneCellAt(zm, i, j) };
}

function zoneHover(ev) {
  const g = view.zoneGrid;
  const hit = zoneHit(ev);
  if (!hit) {
    g.tip.hidden = true;
    return;
  }
  const c = hit.cell;
  const counts = c
    ? `${c.edges} edges: ${c.up} up, ${c.degraded} degraded, ${c.down} down, ${c.unknown} unknown`
    : "no edges";
  const value = c && c.edges
    ? `loss ${+c.loss_pct.toFixed(2)}% · p99 ${fmtUs(c.p99_us)}`
    : "";
  g.tip.hidden = false;
  replace(g.tip,
    el("div", {}, el("b", {}, zoneLabel(hit.from)), " → ", el("b", {}, zoneLabel(hit.to))),
    el("div", {}, counts),
    value ? el("div", {}, value) : null,
    el("div", {}, `click: the nodes of ${zoneLabel(hit.from)}`));
  const box = $("zone-grid").getBoundingClientRect();
  g.tip.style.left = `${ev.clientX - box.left + 14}px`;
  g.tip.style.top = `${ev.clientY - box.top + 14}px`;
}

// ---- zoom ------------------------------------------------------------------------------------

function setZoneInUrl() {
  const u = new URL(location.href);
  if (view.zone === null) u.searchParams.delete("zone");
  else u.searchParams.set("zone", view.zone);
  u.searchParams.delete("src");
  u.searchParams.delete("dst");
  u.searchParams.delete("edge_network");
  history.replaceState(null, "", u);
}

// Opens one zone: its node matrix (app.js's panels, asked for with &zone=) and its node table.
function zoomTo(zone, focus) {
  view.zone = zone;
  view.focus = focus || null;
  view.pageTokens = [""];
  view.selected = null;
  for (const p of view.panels) p.matrix = null;
  replace($("details"), el("p", { class: "hint" }, "Click a cell for the edge's details."));
  setZoneInUrl();
  showMode();
  poll();
}

function zoomOut() {
  view.zone = null;
  view.focus = null;
  view.pageTokens = [""];
  view.selected = null;
  replace($("details"), el("p", { class: "hint" }, overviewHint()));
  setZoneInUrl();
  showMode();
  poll();
}

const overviewHint = () =>
  "Click a zone cell to open the source zone's node matrix, or a node row to open its zone.";

// The focused node (a row clicked in the table) outlined as a cross in its zone's matrix.
function outlineFocus(ctx, p) {
  if (!view.focus || !p.matrix) return;
  const r = p.perm.indexOf(p.matrix.nodes.indexOf(view.focus));
  if (r < 0) return;
  const n = p.matrix.nodes.length;
  ctx.save();
  ctx.strokeStyle = INK;
  ctx.lineWidth = 2;
  ctx.strokeRect(p.left - 1, p.top + r * p.cell - 1, n * p.cell + 1, p.cell + 1);
  ctx.strokeRect(p.left + r * p.cell - 1, p.top - 1, p.cell + 1, n * p.cell + 1);
  ctx.restore();
}

// ---- the node table --------------------------------------------------------------------------

function nodeState(r) {
  const sum = (k) => (r.in ? r.in[k] : 0) + (r.out ? r.out[k] : 0);
  if (sum("down")) return "down";
  if (sum("degraded")) return "degraded";
  if (sum("unknown")) return "unknown";
  return "up";
}

function direction(d) {
  if (!d) return ["–", "–", "–"];
  const total = d.up + d.degraded + d.down + d.unknown;
  const parts = [];
  if (d.down) parts.push(`${d.down} down`);
  if (d.degraded) parts.push(`${d.degraded} degraded`);
  if (d.unknown) parts.push(`${d.unknown} unknown`);
  const edges = `${parts.length ? parts.join(", ") : "all up"} / ${total}`;
  return [edges, `${+d.loss_pct.toFixed(2)}%`, fmtUs(d.p99_us)];
}

function renderNodeTable(r) {
  view.nodeSummary = r;
  view.tableRenders = (view.tableRenders || 0) + 1;
  const rows = r.nodes || [];
  const first = view.pageTokens.length === 1;
  const offset = (view.pageTokens.length - 1) * PAGE_ROWS;
  const head = el("tr", {},
    ...["#", "node", "zone", "state", "probers", "in: edges", "in loss", "in p99", "out: edges", "out loss", "out p99"]
      .map((h) => el("th", {}, h)));
  const body = el("tbody", {});
  for (const [k, row] of rows.entries()) {
    const st = nodeState(row);
    const [inEdges, inLoss, inP99] = direction(row.in);
    const [outEdges, outLoss, outP99] = direction(row.out);
    const tr = el("tr", { class: `row-${st}`, "data-node": row.node, title: `open zone ${zoneLabel(row.zone)} with ${row.node} outlined` },
      el("td", { class: "num" }, String(offset + k + 1)),
      el("td", { class: "name" }, row.node),
      el("td", {}, zoneLabel(row.zone)),
      el("td", {}, el("span", { class: `badge ${st}` }, st.toUpperCase())),
      el("td", { class: "num" }, String(row.probers)),
      el("td", {}, inEdges),
      el("td", { class: "num" }, inLoss),
      el("td", { class: "num" }, inP99),
      el("td", {}, outEdges),
      el("td", { class: "num" }, outLoss),
      el("td", { class: "num" }, outP99));
    tr.tabIndex = 0;
    tr.addEventListener("click", () => zoomTo(row.zone, row.node));
    tr.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") zoomTo(row.zone, row.node);
    });
    body.append(tr);
  }
  const total = r.total || rows.length;
  const shown = rows.length ? `${offset + 1}–${offset + rows.length} of ${total}` : `none of ${total}`;
  const prev = el("button", { type: "button", id: "nodes-prev" }, "‹ worse");
  prev.disabled = first;
  prev.addEventListener("click", () => {
    view.pageTokens.pop();
    poll();
  });
  const next = el("button", { type: "button", id: "nodes-next" }, "better ›");
  next.disabled = !r.next_page_token;
  next.addEventListener("click", () => {
    view.pageTokens.push(r.next_page_token);
    poll();
  });
  const where = view.zone === null ? "" : ` in zone ${zoneLabel(view.zone)}`;
  replace($("nodes"),
    el("div", { class: "nodes-head" },
      el("h2", {}, `Nodes${where}, worst first`),
      el("span", { class: "pager" }, prev, el("span", { id: "nodes-shown" }, shown), next)),
    el("table", { class: "nodes" }, el("thead", {}, head), body));
  if (view.loadedMs === null) {
    // The load-time figure: navigation start to the first node table on screen.
    view.loadedMs = performance.now();
    document.documentElement.dataset.loadedMs = String(Math.round(view.loadedMs));
  }
}

// ---- self-test at scale (?selftest=scale) ---------------------------------------------------

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

async function until(cond, ms) {
  for (let t = 0; t < ms; t += 50) {
    if (cond()) return true;
    await sleep(50);
  }
  return cond();
}

// Reports the overview as drawn (the load time, the table's rows, the zone grid), then opens the
// worst node's zone by clicking its grid cell as a user would, checks the zone's matrix, and goes
// back. The report goes to <pre id="selftest"> and, for a browser run without virtual time (where
// performance.now() is the wall clock), to the console as one "echomesh-selftest {...}" line.
async function runScaleSelftest() {
  view.selftestDone = true;
  const rows = () => $("nodes").querySelectorAll("tbody tr");
  const out = {
    loaded_ms: Math.round(view.loadedMs),
    mode: "zones",
    rows: rows().length,
    total: view.nodeSummary ? view.nodeSummary.total : null,
    first: null,
    next_page: !!(view.nodeSummary && view.nodeSummary.next_page_token),
    zones: view.zoneMatrix ? view.zoneMatrix.zones.length : 0,
    zone_cells: view.zoneGrid ? view.zoneGrid.cells : 0,
    zone_marks: view.zoneGrid ? view.zoneGrid.marks : null,
    zone_cell_px: view.zoneGrid ? view.zoneGrid.cell : 0,
    matrix_requests_refused: view.refused,
    dom_elements: document.getElementsByTagName("*").length,
    diagnosis: $("diagnosis").hidden ? null : $("diagnosis").textContent.replace(/\s+/g, " ").trim(),
    zoom: null,
    back: null,
  };
  const top = view.nodeSummary && view.nodeSummary.nodes[0];
  if (top) {
    out.first = { node: top.node, zone: top.zone, state: nodeState(top), badness: top.badness };
    // Click the worst node's zone on the grid (its diagonal cell).
    const g = view.zoneGrid;
    const i = view.zoneMatrix.zones.indexOf(top.zone);
    const rect = g.canvas.getBoundingClientRect();
    const at = {
      clientX: rect.left + g.left + i * g.cell + g.cell / 2,
      clientY: rect.top + g.left + i * g.cell + g.cell / 2,
      bubbles: true,
    };
    const tables = view.tableRenders;
    g.canvas.dispatchEvent(new MouseEvent("click", at));
    const p = () => view.panels[0];
    await until(() => p().matrix && !$("maps").hidden && view.tableRenders > tables, 30000);
    const m = p().matrix;
    out.zoom = {
      zone: view.zone,
      url_zone: new URL(location.href).searchParams.get("zone"),
      nodes: m ? m.nodes.length : 0,
      cells: m ? m.nodes.length ** 2 : 0,
      panels: view.panels.map((x) => ({ network: x.network, nodes: x.matrix ? x.matrix.nodes.length : 0 })),
      cell_px: p().cell,
      crosses: p().marks.filter((mk) => mk.mark === "cross").length,
      alarm_strips: p().alarmStrips || [],
      overview_hidden: $("overview").hidden,
      rows: rows().length,
      first_row: rows()[0] ? rows()[0].dataset.node : null,
      table_in_zone: view.nodeSummary.nodes.every((r) => r.zone === top.zone),
      crumbs: $("crumbs").textContent,
    };
    const [tablesIn, grids] = [view.tableRenders, view.zoneGrid.renders];
    $("zones-back").click();
    await until(() => view.tableRenders > tablesIn && view.zoneGrid.renders > grids, 30000);
    out.back = {
      overview_shown: !$("overview").hidden,
      maps_hidden: $("maps").hidden,
      url_zone: new URL(location.href).searchParams.get("zone"),
      rows: rows().length,
    };
    // A click on the worst node's row opens its zone with the node outlined.
    const tablesBack = view.tableRenders;
    const firstRow = rows()[0];
    firstRow.click();
    await until(() => p().matrix && !$("maps").hidden && view.tableRenders > tablesBack, 30000);
    out.row_click = {
      node: firstRow.dataset.node,
      zone: view.zone,
      focus: view.focus,
      url_zone: new URL(location.href).searchParams.get("zone"),
      nodes: p().matrix ? p().matrix.nodes.length : 0,
    };
  }
  const pre = $("selftest");
  pre.textContent = JSON.stringify(out);
  pre.dataset.done = "1";
  console.log(`echomesh-selftest ${JSON.stringify(out)}`);
}

// attnscope viewer: talks to `attnscope serve` (POST /api/analyze, /api/overview; /api/sphere for
// a vision model, /api/compare for two models) and draws every view with one small painter
// interface, so each view renders to a <canvas> on screen and to SVG for export. No
// dependencies; works offline.
"use strict";

// The server takes JSON bodies only with this type (a cross-site form or text/plain request
// cannot reach it).
const JSON_HEADERS = { "Content-Type": "application/json" };

const $ = (id) => document.getElementById(id);

// ---- colours

const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [110, 206, 88], [181, 222, 43], [253, 231, 37]];
function viridis(t) {
  if (!isFinite(t)) return "rgb(160,160,160)";
  t = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(t)), f = t - i;
  const c = VIRIDIS[i].map((v, k) => Math.round(v + f * (VIRIDIS[i + 1][k] - v)));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#bcbd22", "#17becf", "#7f7f7f"];
const DIM_COLOUR = ["#1f77b4", "#ff7f0e", "#2ca02c"];
function clusterColour(labels, i) {
  const c = labels[i];
  const size = labels.filter((x) => x === c).length;
  return size <= 1 ? "#9a9a9a" : PALETTE[c % PALETTE.length];
}

// ---- painters: the same drawing calls to a canvas or to an SVG document

class CanvasPainter {
  constructor(canvas, w, h) {
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    canvas.style.width = w + "px";
    canvas.style.height = h + "px";
    this.ctx = canvas.getContext("2d");
    this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.w = w;
    this.h = h;
    this.ctx.fillStyle = "#fff";
    this.ctx.fillRect(0, 0, w, h);
  }
  rect(x, y, w, h, fill, stroke) {
    const c = this.ctx;
    if (fill) { c.fillStyle = fill; c.fillRect(x, y, w, h); }
    if (stroke) { c.strokeStyle = stroke; c.lineWidth = 1; c.strokeRect(x, y, w, h); }
  }
  line(x1, y1, x2, y2, colour, width = 1, alpha = 1, dash = null) {
    const c = this.ctx;
    c.save();
    c.globalAlpha = alpha;
    c.strokeStyle = colour;
    c.lineWidth = width;
    if (dash) c.setLineDash(dash);
    c.beginPath();
    c.moveTo(x1, y1);
    c.lineTo(x2, y2);
    c.stroke();
    c.restore();
  }
  circle(x, y, r, fill, stroke = null, alpha = 1) {
    const c = this.ctx;
    c.save();
    c.globalAlpha = alpha;
    c.beginPath();
    c.arc(x, y, r, 0, 2 * Math.PI);
    if (fill) { c.fillStyle = fill; c.fill(); }
    if (stroke) { c.strokeStyle = stroke; c.lineWidth = 1.2; c.stroke(); }
    c.restore();
  }
  poly(pts, fill, alpha = 1) {
    const c = this.ctx;
    c.save();
    c.globalAlpha = alpha;
    c.fillStyle = fill;
    c.beginPath();
    pts.forEach(([x, y], i) => (i ? c.lineTo(x, y) : c.moveTo(x, y)));
    c.closePath();
    c.fill();
    c.restore();
  }
  text(s, x, y, o = {}) {
    const c = this.ctx;
    c.save();
    c.fillStyle = o.colour || "#222";
    c.font = `${o.bold ? "bold " : ""}${o.size || 11}px "DejaVu Sans", sans-serif`;
    c.textAlign = o.align || "left";
    c.textBaseline = o.baseline || "middle";
    c.translate(x, y);
    if (o.rotate) c.rotate(o.rotate);
    c.fillText(s, 0, 0);
    c.restore();
  }
}

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({
  "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const f3 = (v) => Math.round(v * 100) / 100;

class SvgPainter {
  constructor(w, h) {
    this.w = w;
    this.h = h;
    this.parts = [`<rect width="${w}" height="${h}" fill="#fff"/>`];
  }
  rect(x, y, w, h, fill, stroke) {
    this.parts.push(`<rect x="${f3(x)}" y="${f3(y)}" width="${f3(w)}" height="${f3(h)}" ` +
      `fill="${fill || "none"}"${stroke ? ` stroke="${stroke}"` : ""}/>`);
  }
  line(x1, y1, x2, y2, colour, width = 1, alpha = 1, dash = null) {
    this.parts.push(`<line x1="${f3(x1)}" y1="${f3(y1)}" x2="${f3(x2)}" y2="${f3(y2)}" ` +
      `stroke="${colour}" stroke-width="${width}" stroke-opacity="${alpha}"` +
      `${dash ? ` stroke-dasharray="${dash.join(" ")}"` : ""}/>`);
  }
  circle(x, y, r, fill, stroke = null, alpha = 1) {
    this.parts.push(`<circle cx="${f3(x)}" cy="${f3(y)}" r="${r}" fill="${fill || "none"}" ` +
      `fill-opacity="${alpha}"${stroke ? ` stroke="${stroke}" stroke-width="1.2"` : ""}/>`);
  }
  poly(pts, fill, alpha = 1) {
    this.parts.push(`<polygon points="${pts.map(([x, y]) => f3(x) + "," + f3(y)).join(" ")}" ` +
      `fill="${fill}" fill-opacity="${alpha}"/>`);
  }
  text(s, x, y, o = {}) {
    const anchor = { left: "start", center: "middle", right: "end" }[o.align || "left"];
    const base = { middle: "central", top: "hanging", bottom: "alphabetic",
      alphabetic: "alphabetic" }[o.baseline || "middle"];
    const rot = o.rotate ? ` transform="rotate(${(o.rotate * 180) / Math.PI} ${f3(x)} ${f3(y)})"` : "";
    this.parts.push(`<text x="${f3(x)}" y="${f3(y)}" font-family="DejaVu Sans, sans-serif" ` +
      `font-size="${o.size || 11}" fill="${o.colour || "#222"}" text-anchor="${anchor}" ` +
      `dominant-baseline="${base}"${o.bold ? ' font-weight="bold"' : ""}${rot}>${esc(s)}</text>`);
  }
  toString() {
    return `<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" ` +
      `width="${this.w}" height="${this.h}" viewBox="0 0 ${this.w} ${this.h}">\n` +
      this.parts.join("\n") + "\n</svg>\n";
  }
}

// ---- state

const state = {
  info: null,
  result: null,   // the last /api/analyze answer
  overview: null, // the last /api/overview answer
  overviewText: null,
  rot: { yaw: 0.6, pitch: -0.35 },
  hover: -1,
  projected: [],  // screen positions of the 3-D view's tokens
  timings: { slider: [], text: [] },
  lastTexts: null,
  image: null,      // a vision model: the image file in base64, and its object URL
  imageUrl: null,
  sphere: null,     // the last /api/sphere answer
  sphereKey: null,
  sphereRot: { yaw: 0.4, pitch: -0.3 },
  sphereHover: -1,
  sphereProjected: [],
  pair: null,       // the last /api/compare answer
  pairText: null,
  pairSel: null,    // [head of A, head of B] (flattened l·H + h) clicked
  pairHeads: null,  // their /api/analyze answers [A, B]
};

const isImage = () => state.info && state.info.model.input === "image";
const inputName = (ti) => (isImage() ? "the image" : `text ${ti + 1}`);

function params() {
  if (isImage())
    return {
      image: state.image,
      layer: +$("layer").value,
      head: +$("head").value,
      threshold: +$("threshold").value,
      measure: $("measure").value,
    };
  const t2 = $("text2").value;
  return {
    text: $("text1").value,
    text2: t2.trim() ? t2 : null,
    layer: +$("layer").value,
    head: +$("head").value,
    threshold: +$("threshold").value,
    measure: $("measure").value,
  };
}

// ---- views: each draws into a painter of its own size

function drawHeatmap(p, m, tokens, title, vmax) {
  const n = tokens.length, W = p.w, H = p.h;
  const labelW = n <= 60 ? 70 : 6, top = 26 + labelW, left = labelW + 4;
  const cell = Math.max(1, Math.min((W - left - 60) / n, (H - top - 8) / n));
  p.text(title, W / 2, 12, { align: "center", size: 12, bold: true });
  let max = vmax;
  if (!max) { max = 0; m.forEach((r) => r.forEach((v) => { if (v > max) max = v; })); }
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++)
      p.rect(left + j * cell, top + i * cell, cell + 0.5, cell + 0.5, viridis(m[i][j] / (max || 1)));
  if (n <= 60) {
    const fs = Math.max(7, Math.min(11, cell * 0.8));
    tokens.forEach((t, i) => {
      const s = t.length > 10 ? t.slice(0, 9) + "…" : t;
      p.text(s, left - 3, top + (i + 0.5) * cell, { align: "right", size: fs });
      p.text(s, left + (i + 0.5) * cell, top - 3, { size: fs, rotate: -Math.PI / 2 });
    });
  }
  // colour bar
  const bx = left + n * cell + 14, bh = n * cell;
  for (let k = 0; k < 50; k++)
    p.rect(bx, top + bh - ((k + 1) * bh) / 50, 12, bh / 50 + 0.5, viridis(k / 49));
  p.text(max.toPrecision(3), bx + 15, top + 4, { size: 9 });
  p.text("0", bx + 15, top + bh - 4, { size: 9 });
}

function drawGraph(p, att, tokens, causal) {
  const n = tokens.length, W = p.w, H = p.h, cx = W / 2, cy = H / 2 + 6;
  const R = Math.min(W, H) / 2 - 60;
  p.text("attention graph", W / 2, 12, { align: "center", size: 12, bold: true });
  const pos = tokens.map((_, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / n;
    return [cx + R * Math.cos(a), cy + R * Math.sin(a), a];
  });
  let edges = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      if (i === j || (causal && j > i)) continue;
      const w = causal ? (att[i][j] + att[j][i]) / 2 : att[i][j];
      if (w < 0.05) continue;
      edges++;
      p.line(pos[i][0], pos[i][1], pos[j][0], pos[j][1], "#3b5ba5", 0.5 + 4 * w,
        Math.min(1, 0.15 + w));
    }
  pos.forEach(([x, y, a], i) => {
    p.circle(x, y, 4, "#e4572e");
    const right = Math.cos(a) >= 0;
    p.text(tokens[i], x + (right ? 8 : -8) * Math.abs(Math.cos(a)) + (right ? 2 : -2),
      y + 10 * Math.sin(a), { align: right ? "left" : "right", size: 10 });
  });
  return edges;
}

function rotate3(v, yaw, pitch) {
  const [x, y, z] = v;
  const x1 = x * Math.cos(yaw) + z * Math.sin(yaw), z1 = -x * Math.sin(yaw) + z * Math.cos(yaw);
  const y2 = y * Math.cos(pitch) - z1 * Math.sin(pitch), z2 = y * Math.sin(pitch) + z1 * Math.cos(pitch);
  return [x1, y2, z2];
}

// Centred and scaled by the median distance from the centre, so that one far-away token does
// not squash the others into a point; tokens further than 1.4 such radii are pulled in (same
// direction).
function robustLayout(layout) {
  const n = layout.length, c = [0, 0, 0];
  layout.forEach((v) => v.forEach((x, k) => { c[k] += x / n; }));
  const d = layout.map((v) => Math.hypot(v[0] - c[0], v[1] - c[1], v[2] - c[2]));
  const med = d.slice().sort((a, b) => a - b)[Math.floor(n / 2)] || 1;
  return layout.map((v, i) => {
    const r = d[i] / med, k = r > 1.4 ? (1.4 + Math.log(r / 1.4) * 0.3) / r : 1;
    return v.map((x, j) => ((x - c[j]) / med) * k * 0.9);
  });
}

function drawComplex(p, t, threshold, hover, rot) {
  const W = p.w, H = p.h, n = t.tokens.length, s = Math.min(W, H) * 0.36;
  p.text(`Rips complex at ${threshold.toFixed(3)}: ${t.edges.length} edges, ` +
    `${t.triangles.length} triangles, ${t.clusters.count} cluster${t.clusters.count === 1 ? "" : "s"}`, W / 2, 12,
  { align: "center", size: 12, bold: true });
  const proj = robustLayout(t.layout).map((v) => {
    const [x, y, z] = rotate3(v, rot.yaw, rot.pitch), f = 3 / (3 + z);
    return [W / 2 + s * x * f, H / 2 + 10 + s * y * f, z];
  });
  // triangles back to front, then edges, then vertices
  const tris = t.triangles.map((tr) => [tr, (proj[tr[0]][2] + proj[tr[1]][2] + proj[tr[2]][2]) / 3])
    .sort((a, b) => b[1] - a[1]);
  for (const [tr] of tris)
    p.poly(tr.map((i) => [proj[i][0], proj[i][1]]), "#6a8fd0", 0.12);
  const hot = new Set();
  if (state.cycle != null && t.cycles[state.cycle])
    t.cycles[state.cycle].edges.forEach(([a, b]) => hot.add(Math.min(a, b) + "," + Math.max(a, b)));
  for (const [i, j] of t.edges) {
    const h = hot.has(i + "," + j);
    p.line(proj[i][0], proj[i][1], proj[j][0], proj[j][1], h ? "#d62728" : "#334", h ? 2.5 : 1,
      h ? 1 : 0.55);
  }
  const order = proj.map((q, i) => i).sort((a, b) => proj[b][2] - proj[a][2]);
  for (const i of order) {
    const [x, y] = proj[i];
    p.circle(x, y, i === hover ? 7 : 5, clusterColour(t.clusters.labels, i), "#222");
    if (n <= 40 || i === hover)
      p.text(t.tokens[i], x + 8, y - 8, { size: i === hover ? 12 : 10, bold: i === hover });
  }
  return proj;
}

function diagramBounds(texts) {
  let max = 0;
  for (const t of texts)
    for (const d of t.diagrams.dims)
      for (const [b, e] of d.pairs) max = Math.max(max, b, e == null ? 0 : e);
  return max > 0 ? max * 1.08 : 1;
}

function drawDiagram(p, texts, threshold) {
  const W = p.w, H = p.h, m = 44, side = Math.min(W - m - 30, H - m - 54);
  const x0 = m, y0 = 50 + side, max = diagramBounds(texts);
  const X = (v) => x0 + (v / max) * side, Y = (v) => y0 - (v / max) * side;
  p.text("persistence diagram", W / 2, 12, { align: "center", size: 12, bold: true });
  p.rect(x0, y0 - side, side, side, null, "#999");
  p.line(X(0), Y(0), X(max), Y(max), "#999", 1);
  p.line(X(threshold), Y(0), X(threshold), Y(max), "#c33", 1, 0.6, [4, 3]);
  p.line(X(0), Y(threshold), X(max), Y(threshold), "#c33", 1, 0.6, [4, 3]);
  const infY = y0 - side - 16;
  p.text("∞", x0 - 4, infY, { size: 12, align: "right" });
  p.line(x0, infY, x0 + side, infY, "#bbb", 1, 1, [2, 2]);
  for (let k = 0; k <= 4; k++) {
    const v = (max * k) / 4;
    p.text(v.toFixed(2), X(v), y0 + 10, { align: "center", size: 9 });
    p.text(v.toFixed(2), x0 - 4, Y(v), { align: "right", size: 9 });
  }
  p.text("birth", x0 + side / 2, y0 + 24, { align: "center", size: 10 });
  texts.forEach((t, ti) => {
    for (const d of t.diagrams.dims)
      for (const [b, e] of d.pairs) {
        const y = e == null ? infY : Y(e), c = DIM_COLOUR[d.dim];
        if (ti === 0) p.circle(X(b), y, 3.5, c, null, 0.85);
        else p.circle(X(b), y, 4, null, c);
      }
  });
  texts[0].diagrams.dims.forEach((d, k) =>
    p.text(`H${d.dim}`, x0 + side + 6, 40 + 14 * k, { colour: DIM_COLOUR[d.dim], size: 11, bold: true }));
}

function drawBarcode(p, texts, threshold) {
  const W = p.w, max = diagramBounds(texts), left = 60, right = W - 16;
  const X = (v) => left + (v / max) * (right - left);
  p.text("barcode", W / 2, 12, { align: "center", size: 12, bold: true });
  let y = 30;
  const rows = [];
  texts.forEach((t, ti) => {
    rows.push({ label: inputName(ti), y });
    y += 14;
    for (const d of t.diagrams.dims) {
      const bars = d.pairs.slice().sort((a, b) => a[0] - b[0] || (a[1] ?? 1e9) - (b[1] ?? 1e9));
      for (const [b, e] of bars) {
        rows.push({ dim: d.dim, b, e, y });
        y += 5;
      }
      y += 4;
    }
    y += 6;
  });
  for (const r of rows) {
    if (r.label) { p.text(r.label, 4, r.y, { size: 10, bold: true }); continue; }
    const x2 = r.e == null ? right : X(r.e);
    p.rect(X(r.b), r.y - 1.5, Math.max(1, x2 - X(r.b)), 3, DIM_COLOUR[r.dim]);
    if (r.e == null) p.poly([[right, r.y - 3], [right + 5, r.y], [right, r.y + 3]], DIM_COLOUR[r.dim]);
  }
  p.line(X(threshold), 24, X(threshold), y, "#c33", 1, 0.7, [4, 3]);
  for (let k = 0; k <= 4; k++) {
    const v = (max * k) / 4;
    p.text(v.toFixed(2), X(v), y + 8, { align: "center", size: 9 });
  }
  return rows.filter((r) => !r.label).length;
}

function barcodeHeight(texts) {
  let rows = 0;
  for (const t of texts) for (const d of t.diagrams.dims) rows += d.pairs.length;
  return 30 + texts.length * 20 + rows * 5 + texts.length * 12 + 40;
}

function drawOverview(p, ov, stat, sel) {
  if (stat === "h1" && !ov.h1_persistence) {
    p.text(`total H1 persistence is computed for texts of at most ${ov.h1_max_tokens} tokens`,
      p.w / 2, 40, { align: "center", size: 11 });
    return null;
  }
  const g = stat === "h1" ? ov.h1_persistence : ov.entropy, L = g.length, H = g[0].length;
  const left = 40, top = 40, cell = Math.min((p.w - left - 20) / H, (p.h - top - 20) / L);
  let max = 0;
  g.forEach((r) => r.forEach((v) => { if (v > max) max = v; }));
  p.text(stat === "h1" ? "total H1 persistence of each head" : "mean token entropy (bits) of each head",
    p.w / 2, 12, { align: "center", size: 12, bold: true });
  for (let l = 0; l < L; l++) {
    p.text(String(l), left - 6, top + (l + 0.5) * cell, { align: "right", size: 10 });
    for (let h = 0; h < H; h++) {
      p.rect(left + h * cell, top + l * cell, cell - 1, cell - 1, viridis(g[l][h] / (max || 1)));
      if (cell >= 30)
        p.text(g[l][h].toFixed(2), left + (h + 0.5) * cell, top + (l + 0.5) * cell,
          { align: "center", size: 9, colour: g[l][h] / (max || 1) > 0.6 ? "#000" : "#fff" });
    }
  }
  for (let h = 0; h < H; h++)
    p.text(String(h), left + (h + 0.5) * cell, top - 8, { align: "center", size: 10 });
  p.text("layer ↓  head →", 4, 26, { size: 9, colour: "#666" });
  if (sel) p.rect(left + sel[1] * cell - 1, top + sel[0] * cell - 1, cell + 1, cell + 1, null, "#e00");
  if (sel) p.rect(left + sel[1] * cell, top + sel[0] * cell, cell - 1, cell - 1, null, "#e00");
  return { left, top, cell, L, H };
}

// ---- layout of every view, on screen or in an SVG

const VIEWS = {
  overview: { size: () => [460, Math.max(200, 60 + 34 * (state.info ? state.info.model.layers : 6))],
    ready: () => state.overview,
    draw: (p) => (state.overviewGeom = drawOverview(p, state.overview, $("overview-stat").value,
      [+$("layer").value, +$("head").value])),
    server: "overview" },
  complex: { size: () => [520, 480], ready: () => complexText(),
    draw: (p) => (state.projected = drawComplex(p, complexText(), state.result.threshold,
      state.hover, state.rot)) },
  heatmap1: { size: () => [480, 480], ready: () => state.result,
    draw: (p) => drawHeatmap(p, state.result.texts[0].attention, state.result.texts[0].tokens,
      `layer ${state.result.layer}, head ${state.result.head}`), server: "heatmap", which: 1 },
  heatmap2: { size: () => [480, 480], ready: () => state.result && state.result.texts[1],
    draw: (p) => drawHeatmap(p, state.result.texts[1].attention, state.result.texts[1].tokens,
      `layer ${state.result.layer}, head ${state.result.head}`), server: "heatmap", which: 2 },
  graph: { size: () => [480, 480], ready: () => state.result,
    draw: (p) => drawGraph(p, state.result.texts[0].attention, state.result.texts[0].tokens,
      state.info.model.causal), server: "graph", which: 1 },
  measure: { size: () => [480, 480], ready: () => state.result,
    draw: (p) => drawHeatmap(p, state.result.texts[0].matrix, state.result.texts[0].tokens,
      `${state.result.measure}, layer ${state.result.layer}, head ${state.result.head}`),
    server: "measure", which: 1 },
  diagram: { size: () => [420, 420], ready: () => state.result,
    draw: (p) => drawDiagram(p, state.result.texts, state.result.threshold), server: "diagram", which: 1 },
  barcode: { size: () => [420, Math.max(200, barcodeHeight(state.result.texts))], ready: () => state.result,
    draw: (p) => drawBarcode(p, state.result.texts, state.result.threshold), server: "barcode", which: 1 },
  sphere: { size: () => [480, 480], ready: () => isImage() && state.sphere,
    draw: (p) => (state.sphereProjected = drawSphere(p, state.sphere, state.sphereHover, state.sphereRot)),
    server: "sphere", which: 1 },
  pair: { size: () => {
    const d = state.pair, c = pairCell(d);
    return [Math.max(470, PAIR_LEFT + d.models[1].layers * d.models[1].heads * c + 100),
      Math.max(220, PAIR_TOP + d.models[0].layers * d.models[0].heads * c + 40)];
  }, ready: () => state.pair,
  draw: (p) => (state.pairGeom = drawPair(p, state.pair, $("pair-measure").value, +$("pair-dim").value,
    state.pairSel)) },
};

// The patches of a ViT on a Fibonacci sphere (positions and edges from /api/sphere, i.e.
// ats_vision): rotated and projected here; patch k is coloured by its raster order, and the
// patch under the pointer is outlined on the image beside it.
function drawSphere(p, sph, hover, rot) {
  const W = p.w, H = p.h, R = Math.min(W, H - 60) * 0.42, cx = W / 2, cy = 30 + (H - 60) / 2;
  const im = sph.images[0], pts = im.sphere.points, edges = im.sphere.edges, n = pts.length;
  p.text(`layer ${sph.layer}, head ${sph.head}: ${n} patches, the ${edges.length} strongest edges`,
    W / 2, 12, { align: "center", size: 12, bold: true });
  p.circle(cx, cy, R, null, "#ccc");
  const proj = pts.map((v) => {
    const [x, y, z] = rotate3(v, rot.yaw, rot.pitch), f = 3 / (3 + z);
    return [cx + R * x * f, cy - R * y * f, z];
  });
  let wmax = 0;
  for (const e of edges) wmax = Math.max(wmax, e[2]);
  // edges back to front, strong edges darker and wider
  const order = edges.map((e, k) => [k, (proj[e[0]][2] + proj[e[1]][2]) / 2]).sort((a, b) => b[1] - a[1]);
  for (const [k] of order) {
    const [i, j, w] = edges[k], t = w / (wmax || 1), back = (proj[i][2] + proj[j][2]) / 2 > 0;
    p.line(proj[i][0], proj[i][1], proj[j][0], proj[j][1], "#3b5ba5", 0.4 + 2.6 * t,
      (back ? 0.25 : 0.55) * (0.3 + 0.7 * t));
  }
  const nodes = proj.map((q, i) => i).sort((a, b) => proj[b][2] - proj[a][2]);
  for (const i of nodes) {
    const [x, y, z] = proj[i];
    p.circle(x, y, i === hover ? 6 : 3.5, viridis(n > 1 ? i / (n - 1) : 0), i === hover ? "#d62728" : "#333",
      z > 0 ? 0.45 : 1);
  }
  if (hover >= 0) p.text(sph.patches[hover], proj[hover][0] + 9, proj[hover][1] - 9, { size: 12, bold: true });
  // colour key: raster order of the patches
  const kx = W / 2 - 90, ky = H - 18;
  for (let k = 0; k < 60; k++) p.rect(kx + k * 3, ky - 5, 3.5, 10, viridis(k / 59));
  p.text(sph.patches[0], kx - 4, ky, { align: "right", size: 10 });
  p.text(sph.patches[n - 1], kx + 184, ky, { size: 10 });
  p.text("patch colour: raster order", W / 2, ky - 14, { align: "center", size: 10, colour: "#555" });
  return proj;
}

function drawSphereImage(cv, sph, hover) {
  const side = 180, p = new CanvasPainter(cv, side + 20, side + 40);
  const [rows, cols] = sph.grid, cw = side / cols, ch = side / rows;
  p.text("the image as the model sees it", (side + 20) / 2, 10, { align: "center", size: 11 });
  const img = $("image-preview");
  if (img.complete && img.naturalWidth) p.ctx.drawImage(img, 10, 24, side, side);
  for (let r = 0; r <= rows; r++) p.line(10, 24 + r * ch, 10 + side, 24 + r * ch, "#fff", 0.5, 0.6);
  for (let c = 0; c <= cols; c++) p.line(10 + c * cw, 24, 10 + c * cw, 24 + side, "#fff", 0.5, 0.6);
  if (hover >= 0) { // a white and a red frame: visible on any colour
    const r = Math.floor(hover / cols), c = hover % cols, x = 10 + c * cw, y = 24 + r * ch;
    p.ctx.save();
    p.ctx.lineWidth = 4;
    p.ctx.strokeStyle = "#fff";
    p.ctx.strokeRect(x, y, cw, ch);
    p.ctx.lineWidth = 2;
    p.ctx.strokeStyle = "#d62728";
    p.ctx.strokeRect(x, y, cw, ch);
    p.ctx.restore();
    p.text(sph.patches[hover], (side + 20) / 2, side + 34, { align: "center", size: 11, bold: true });
  }
}

// Every head of A (rows) against every head of B (columns) from /api/compare; +inf (different
// numbers of essential classes) grey. Returns the geometry for clicks.
function drawPair(p, doc, measure, dim, sel) {
  const m = doc[measure][String(dim)], A = doc.models[0], B = doc.models[1];
  const rows = m.length, cols = m[0].length;
  const left = PAIR_LEFT, top = PAIR_TOP, cell = pairCell(doc), nums = cell >= 12;
  let lo = Infinity, hi = -Infinity;
  m.forEach((r) => r.forEach((v) => { if (v != null && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } }));
  if (!(hi >= lo)) { lo = 0; hi = 1; }
  p.text(`${measure} distance between the H${dim} diagrams of each pair of heads`, p.w / 2, 12,
    { align: "center", size: 12, bold: true });
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) {
      const v = m[i][j];
      p.rect(left + j * cell, top + i * cell, cell + 0.3, cell + 0.3,
        v == null || !isFinite(v) ? "rgb(190,190,190)" : viridis((v - lo) / (hi - lo || 1)));
    }
  // layer blocks: lines between layers, the layer's label at its middle
  // (heads numbered within their layer when the cells are large enough)
  const every = (H, c) => Math.max(1, Math.ceil(16 / (H * c)));
  for (let l = 0; l <= A.layers; l++) {
    const y = top + l * A.heads * cell;
    p.line(left, y, left + cols * cell, y, "#fff", 1.5);
    if (l < A.layers && l % every(A.heads, cell) === 0)
      p.text(`L${l}`, left - (nums ? 18 : 5), y + (A.heads * cell) / 2, { align: "right", size: 10, bold: true });
  }
  for (let l = 0; l <= B.layers; l++) {
    const x = left + l * B.heads * cell;
    p.line(x, top, x, top + rows * cell, "#fff", 1.5);
    if (l < B.layers && l % every(B.heads, cell) === 0)
      p.text(`L${l}`, x + (B.heads * cell) / 2, top - (nums ? 20 : 7), { align: "center", size: 10, bold: true });
  }
  if (nums) {
    for (let i = 0; i < rows; i++)
      p.text(String(i % A.heads), left - 4, top + (i + 0.5) * cell, { align: "right", size: 8, colour: "#555" });
    for (let j = 0; j < cols; j++)
      p.text(String(j % B.heads), left + (j + 0.5) * cell, top - 7, { align: "center", size: 8, colour: "#555" });
  }
  const types = state.info.models.map((x) => x.type);
  p.text(`model B (${types[1]}): layer, head →`, left, 30, { size: 10, colour: "#555" });
  p.text(`model A (${types[0]}): layer, head ↓`, 12, top + (rows * cell) / 2,
    { align: "center", size: 10, colour: "#555", rotate: -Math.PI / 2 });
  if (sel) {
    p.rect(left + sel[1] * cell - 1, top + sel[0] * cell - 1, cell + 2, cell + 2, null, "#e00");
    p.rect(left + sel[1] * cell, top + sel[0] * cell, cell, cell, null, "#e00");
  }
  // colour bar with its range
  const bx = left + cols * cell + 16, bh = rows * cell;
  for (let k = 0; k < 50; k++)
    p.rect(bx, top + bh - ((k + 1) * bh) / 50, 12, bh / 50 + 0.5, viridis(k / 49));
  p.text(hi.toPrecision(3), bx + 16, top + 5, { size: 10 });
  p.text(lo.toPrecision(3), bx + 16, top + bh - 5, { size: 10 });
  p.rect(bx, top + bh + 10, 12, 10, "rgb(190,190,190)");
  p.text("∞", bx + 16, top + bh + 15, { size: 10 });
  return { left, top, cell, rows, cols };
}

const PAIR_LEFT = 70, PAIR_TOP = 62;
function pairCell(doc) {
  const n = Math.max(doc.models[0].layers * doc.models[0].heads, doc.models[1].layers * doc.models[1].heads);
  return Math.max(3, Math.min(28, Math.floor(520 / n)));
}

function headName(k, model) {
  const H = model.heads;
  return `L${Math.floor(k / H)} H${k % H}`;
}

function complexText() {
  if (!state.result) return null;
  const k = +$("complex-text").value;
  return state.result.texts[k] || state.result.texts[0];
}

function canvasOf(name) { return $(name === "measure" ? "measurecv" : name); }

function drawView(name) {
  const v = VIEWS[name], cv = canvasOf(name);
  const article = cv.closest(".view");
  if (!v.ready()) {
    if (name === "heatmap2") article.classList.add("empty");
    return;
  }
  article.classList.remove("empty");
  const [w, h] = v.size();
  const p = new CanvasPainter(cv, w, h);
  const out = v.draw(p);
  cv.dataset.drawn = String(Date.now());
  if (name === "complex") {
    const t = complexText();
    cv.dataset.edges = t.edges.length;
    cv.dataset.triangles = t.triangles.length;
    cv.dataset.clusters = t.clusters.count;
    cv.dataset.tokens = JSON.stringify(t.tokens);
  } else if (name === "graph") cv.dataset.edges = out;
  else if (name === "heatmap1" || name === "heatmap2") {
    const t = state.result.texts[name === "heatmap1" ? 0 : 1];
    cv.dataset.tokens = JSON.stringify(t.tokens);
    cv.dataset.head = `${state.result.layer},${state.result.head}`;
  } else if (name === "overview") cv.dataset.selected = `${$("layer").value},${$("head").value}`;
  else if (name === "barcode") cv.dataset.bars = out;
  else if (name === "sphere") {
    cv.dataset.points = state.sphere.images[0].sphere.points.length;
    cv.dataset.edges = state.sphere.images[0].sphere.edges.length;
    cv.dataset.head = `${state.sphere.layer},${state.sphere.head}`;
    drawSphereImage($("sphere-image"), state.sphere, state.sphereHover);
  } else if (name === "pair") {
    cv.dataset.shape = `${state.pair.bottleneck["0"].length}x${state.pair.bottleneck["0"][0].length}`;
    drawPairHeads();
  }
}

// The two heads of the clicked cell: each model's attention on text 1.
function drawPairHeads() {
  const hs = state.pairHeads;
  for (const [k, id] of [[0, "pairA"], [1, "pairB"]]) {
    const cv = $(id);
    if (!hs || !hs[k]) { cv.hidden = true; continue; }
    cv.hidden = false;
    const r = hs[k], t = r.texts[0], p = new CanvasPainter(cv, 380, 380);
    drawHeatmap(p, t.attention, t.tokens, `model ${k ? "B" : "A"} (${r.model.type}): layer ${r.layer}, head ${r.head}`);
    cv.dataset.head = `${r.layer},${r.head}`;
    cv.dataset.tokens = JSON.stringify(t.tokens);
  }
}

function canvasOfView(name) { return canvasOf(name); }

function drawAll() {
  for (const name of Object.keys(VIEWS)) if (!canvasOfView(name).closest(".view").hidden) drawView(name);
  drawSummary();
}

function drawSummary() {
  const r = state.result;
  if (!r) return;
  const parts = [];
  if (r.comparison) {
    parts.push('<table class="cmp"><tr><th></th>' + r.comparison.dims.map((d) => `<th>H${d.dim}</th>`).join("") + "</tr>");
    for (const k of ["bottleneck", "wasserstein"])
      parts.push(`<tr><td>${k}</td>` + r.comparison.dims.map((d) =>
        `<td id="${k}-H${d.dim}">${d[k] == null ? "∞" : d[k].toFixed(4)}</td>`).join("") + "</tr>");
    parts.push("</table>");
  } else if (!isImage()) parts.push("<p>Give a second text to compare the diagrams (bottleneck, Wasserstein).</p>");
  r.texts.forEach((t, ti) => {
    const groups = [];
    for (let c = 0; c < t.clusters.count; c++)
      groups.push(t.tokens.filter((_, i) => t.clusters.labels[i] === c));
    const nm = inputName(ti);
    parts.push(`<h3>${nm[0].toUpperCase() + nm.slice(1)}: ${t.tokens.length} tokens, ${t.clusters.count} cluster${t.clusters.count === 1 ? "" : "s"} at ${r.threshold.toFixed(3)}</h3>`);
    parts.push('<p class="clusters">' + groups.map((g, c) =>
      `<span class="cl" style="border-color:${g.length > 1 ? PALETTE[c % PALETTE.length] : "#9a9a9a"}">${g.map(esc).join(" ")}</span>`).join(" ") + "</p>");
    if (t.cycles.length)
      parts.push("<p>H1 cycles: " + t.cycles.map((c, k) =>
        `<a href="#" class="cycle" data-text="${ti}" data-cycle="${k}">[${c.birth.toFixed(3)}, ${c.death == null ? "∞" : c.death.toFixed(3)}) ${c.tokens.map(esc).join(" – ")}</a>`).join("; ") + "</p>");
    else parts.push("<p>No H1 cycles.</p>");
  });
  $("summary").innerHTML = parts.join("");
}

// ---- exports

function download(name, blob) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

function exportView(name, format) {
  const v = VIEWS[name];
  if (!v.ready()) return;
  const file = `attnscope-${name}-L${$("layer").value}-H${$("head").value}.${format}`;
  if (format === "png") {
    canvasOf(name).toBlob((b) => download(file, b), "image/png");
  } else {
    const [w, h] = v.size();
    const p = new SvgPainter(w, h);
    v.draw(p);
    p.h = Math.max(p.h, h);
    download(file, new Blob([p.toString()], { type: "image/svg+xml" }));
  }
}

async function exportServer(name, format) {
  const v = VIEWS[name];
  const body = Object.assign(params(), { which: v.which || 1, stat: $("overview-stat").value });
  const r = await fetch(`api/figure/${v.server}.${format}`, { method: "POST", headers: JSON_HEADERS, body: JSON.stringify(body) });
  if (!r.ok) return showError((await r.json()).error);
  download(`attnscope-${v.server}-L${body.layer}-H${body.head}.${format}`, await r.blob());
}

function addExportButtons() {
  for (const article of document.querySelectorAll(".view")) {
    const name = article.dataset.view;
    if (!VIEWS[name]) continue;
    const bar = document.createElement("span");
    bar.className = "export";
    const add = (label, title, fn) => {
      const b = document.createElement("button");
      b.textContent = label;
      b.title = title;
      b.dataset.export = label;
      b.addEventListener("click", fn);
      bar.appendChild(b);
    };
    add("PNG", "save this view as PNG", () => exportView(name, "png"));
    add("SVG", "save this view as SVG", () => exportView(name, "svg"));
    if (VIEWS[name].server) {
      add("PNG·C", "the C renderer's figure (cairo), PNG", () => exportServer(name, "png"));
      add("SVG·C", "the C renderer's figure (cairo), SVG", () => exportServer(name, "svg"));
    }
    article.querySelector("h2").appendChild(bar);
  }
}

// ---- requests: at most one in flight; the latest state wins

let inflight = false, pending = null;

function showError(msg) {
  const e = $("error");
  e.textContent = msg || "";
  e.hidden = !msg;
  $("views").classList.toggle("stale", !!msg); // the figures are of the last good request
}

function median(a) {
  if (!a.length) return NaN;
  const s = a.slice().sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

function showLatency(kind, ms, server) {
  state.timings[kind].push(ms);
  const s = state.timings.slider, t = state.timings.text;
  $("latency").textContent =
    `slider change: ${s.length ? s[s.length - 1].toFixed(0) + " ms (median " + median(s).toFixed(0) + ")" : "–"} · ` +
    `new text: ${t.length ? t[t.length - 1].toFixed(0) + " ms (median " + median(t).toFixed(0) + ")" : "–"}` +
    ` · server ${server.total_ms.toFixed(1)} ms${server.cached ? " (cached forward pass)" : ", forward " + server.forward_ms.toFixed(1) + " ms"}`;
  $("latency").dataset[kind] = ms.toFixed(1);
}

async function analyze(kind) {
  if (isImage() && !state.image) return; // nothing to analyse before an image is chosen
  if (inflight) {
    pending = kind === "text" || pending === "text" ? "text" : kind;
    return;
  }
  inflight = true;
  const t0 = performance.now(), body = params();
  $("status").textContent = "…";
  try {
    const r = await fetch("api/analyze", { method: "POST", headers: JSON_HEADERS, body: JSON.stringify(body) });
    const doc = await r.json();
    if (!r.ok) {
      showError(doc.error);
    } else {
      showError(null);
      state.result = doc;
      const texts = isImage() ? body.image : body.text + "\u0000" + (body.text2 || "");
      const changed = texts !== state.lastTexts;
      state.lastTexts = texts;
      setThresholdRange(doc);
      if (state.cycle != null && !(complexText().cycles[state.cycle])) state.cycle = null;
      drawAll();
      showLatency(changed || kind === "text" ? "text" : "slider", performance.now() - t0, doc.timing);
      document.body.dataset.analyzed = String((+document.body.dataset.analyzed || 0) + 1);
      const key = isImage() ? body.image : body.text;
      if (key !== state.overviewText) loadOverview(key);
      if (isImage()) loadSphere(body);
      if (state.info.models.length > 1 && body.text !== state.pairText) loadPair(body.text);
    }
  } catch (e) {
    showError("the server did not answer: " + e);
  }
  $("status").textContent = "";
  inflight = false;
  if (pending) {
    const k = pending;
    pending = null;
    analyze(k);
  }
}

function setThresholdRange(doc) {
  let max = 0;
  for (const t of doc.texts) max = Math.max(max, t.distance_range[1]);
  const s = $("threshold");
  const top = Math.max(max * 1.05, 1e-6);
  if (Math.abs(+s.max - top) > 1e-9) {
    s.max = top.toFixed(4);
    s.step = (top / 500).toPrecision(2);
  }
  $("threshold-out").textContent = (+s.value).toFixed(3);
}

async function loadOverview(text) {
  state.overviewText = text;
  try {
    const input = isImage() ? { image: text } : { text };
    const r = await fetch("api/overview", { method: "POST", headers: JSON_HEADERS, body: JSON.stringify(input) });
    const doc = await r.json();
    if (r.ok && text === (isImage() ? state.image : $("text1").value)) {
      state.overview = doc;
      drawView("overview");
    }
  } catch (e) {
    showError("overview: " + e);
  }
}

// The sphere graph of the image at the head (again only when the image or the head changed).
async function loadSphere(body) {
  const key = `${body.layer},${body.head},${body.image.length},${body.image.slice(-64)}`;
  if (key === state.sphereKey) return;
  state.sphereKey = key;
  try {
    const r = await fetch("api/sphere", { method: "POST", headers: JSON_HEADERS,
      body: JSON.stringify({ image: body.image, layer: body.layer, head: body.head }) });
    const doc = await r.json();
    if (!r.ok) { state.sphereKey = null; return showError("sphere: " + doc.error); }
    if (key !== state.sphereKey) return;
    state.sphere = doc;
    state.sphereHover = -1;
    drawView("sphere");
    document.body.dataset.sphere = String((+document.body.dataset.sphere || 0) + 1);
  } catch (e) {
    state.sphereKey = null;
    showError("sphere: " + e);
  }
}

// Every head of model A against every head of model B on text 1.
async function loadPair(text) {
  state.pairText = text;
  try {
    const r = await fetch("api/compare", { method: "POST", headers: JSON_HEADERS, body: JSON.stringify({ text }) });
    const doc = await r.json();
    if (text !== state.pairText) return;
    if (!r.ok) return showError("models compared: " + doc.error);
    state.pair = doc;
    if (state.pairSel) loadPairHeads(state.pairSel[0], state.pairSel[1]);
    drawView("pair");
    document.body.dataset.pair = String((+document.body.dataset.pair || 0) + 1);
  } catch (e) {
    showError("models compared: " + e);
  }
}

async function loadPairHeads(i, j) {
  const d = state.pair, A = d.models[0], B = d.models[1], text = state.pairText;
  state.pairSel = [i, j];
  const ask = (model, k, M) => fetch("api/analyze", { method: "POST", headers: JSON_HEADERS,
    body: JSON.stringify({ text, model, layer: Math.floor(k / M.heads), head: k % M.heads, measure: $("measure").value }) })
    .then((r) => r.json().then((doc) => (r.ok ? doc : Promise.reject(new Error(doc.error)))));
  try {
    const heads = await Promise.all([ask(1, i, A), ask(2, j, B)]);
    if (text !== state.pairText || state.pairSel[0] !== i || state.pairSel[1] !== j) return;
    state.pairHeads = heads;
    drawView("pair");
    document.body.dataset.pairHeads = `${i},${j}`;
  } catch (e) {
    showError("heads of the two models: " + e.message);
  }
}

function setImage(file) {
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => {
    const url = String(reader.result);
    state.image = url.slice(url.indexOf(",") + 1);
    $("image-preview").src = url;
    state.sphereKey = null;
    analyze("text");
  };
  reader.readAsDataURL(file);
}

// ---- interaction

function bindControls() {
  for (const id of ["layer", "head", "threshold"]) {
    $(id).addEventListener("input", () => {
      $(id + "-out").textContent = id === "threshold" ? (+$(id).value).toFixed(3) : $(id).value;
      analyze("slider");
    });
  }
  $("measure").addEventListener("change", () => analyze("slider"));
  $("complex-text").addEventListener("change", () => { state.cycle = null; drawView("complex"); });
  $("overview-stat").addEventListener("change", () => drawView("overview"));
  let timer = null;
  for (const id of ["text1", "text2"])
    $(id).addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => analyze("text"), 250);
    });
  $("overview").addEventListener("click", (ev) => {
    const g = state.overviewGeom;
    if (!g) return;
    const rect = ev.target.getBoundingClientRect();
    const h = Math.floor((ev.clientX - rect.left - g.left) / g.cell);
    const l = Math.floor((ev.clientY - rect.top - g.top) / g.cell);
    if (l < 0 || l >= g.L || h < 0 || h >= g.H) return;
    $("layer").value = l;
    $("head").value = h;
    $("layer-out").textContent = l;
    $("head-out").textContent = h;
    analyze("slider");
  });
  $("summary").addEventListener("click", (ev) => {
    const a = ev.target.closest("a.cycle");
    if (!a) return;
    ev.preventDefault();
    $("complex-text").value = a.dataset.text;
    state.cycle = +a.dataset.cycle;
    drawView("complex");
  });
  // 3-D view: drag to rotate, hover for the token
  const cv = $("complex"), tip = $("tooltip");
  let drag = null;
  cv.addEventListener("mousedown", (ev) => { drag = [ev.clientX, ev.clientY]; });
  window.addEventListener("mouseup", () => { drag = null; });
  cv.addEventListener("mousemove", (ev) => {
    const rect = cv.getBoundingClientRect(), x = ev.clientX - rect.left, y = ev.clientY - rect.top;
    if (drag) {
      state.rot.yaw += (ev.clientX - drag[0]) * 0.01;
      state.rot.pitch = Math.max(-1.5, Math.min(1.5, state.rot.pitch + (ev.clientY - drag[1]) * 0.01));
      drag = [ev.clientX, ev.clientY];
      drawView("complex");
      return;
    }
    let best = -1, bd = 100;
    state.projected.forEach(([px, py], i) => {
      const d = (px - x) ** 2 + (py - y) ** 2;
      if (d < bd) { bd = d; best = i; }
    });
    if (best !== state.hover) {
      state.hover = best;
      drawView("complex");
    }
    const t = complexText();
    if (best >= 0 && t) {
      tip.hidden = false;
      tip.textContent = `${t.tokens[best]}  (token ${best}, cluster ${t.clusters.labels[best]})`;
      tip.style.left = x + 14 + "px";
      tip.style.top = y + 14 + "px";
    } else tip.hidden = true;
    cv.dataset.hover = best >= 0 && t ? t.tokens[best] : "";
  });
  cv.addEventListener("mouseleave", () => {
    tip.hidden = true;
    if (state.hover !== -1) { state.hover = -1; drawView("complex"); }
  });
  // the sphere: drag to rotate, hover for the patch
  const sv = $("sphere");
  let sdrag = null;
  sv.addEventListener("mousedown", (ev) => { sdrag = [ev.clientX, ev.clientY]; });
  window.addEventListener("mouseup", () => { sdrag = null; });
  sv.addEventListener("mousemove", (ev) => {
    if (!state.sphere) return;
    const rect = sv.getBoundingClientRect(), x = ev.clientX - rect.left, y = ev.clientY - rect.top;
    if (sdrag) {
      state.sphereRot.yaw += (ev.clientX - sdrag[0]) * 0.01;
      state.sphereRot.pitch = Math.max(-1.5, Math.min(1.5, state.sphereRot.pitch + (ev.clientY - sdrag[1]) * 0.01));
      sdrag = [ev.clientX, ev.clientY];
      drawView("sphere");
      return;
    }
    let best = -1, bd = 80;
    state.sphereProjected.forEach(([px, py], i) => {
      const d = (px - x) ** 2 + (py - y) ** 2;
      if (d < bd) { bd = d; best = i; }
    });
    if (best !== state.sphereHover) { state.sphereHover = best; drawView("sphere"); }
    sv.dataset.hover = best >= 0 ? state.sphere.patches[best] : "";
  });
  sv.addEventListener("mouseleave", () => {
    if (state.sphereHover !== -1) { state.sphereHover = -1; drawView("sphere"); }
  });
  $("image-file").addEventListener("change", (ev) => setImage(ev.target.files[0]));
  // the model pair: hover names the two heads, a click shows both
  const pv = $("pair"), ptip = $("pair-tooltip");
  const cellAt = (ev) => {
    const g = state.pairGeom;
    if (!g) return null;
    const rect = pv.getBoundingClientRect();
    const j = Math.floor((ev.clientX - rect.left - g.left) / g.cell);
    const i = Math.floor((ev.clientY - rect.top - g.top) / g.cell);
    return i < 0 || i >= g.rows || j < 0 || j >= g.cols ? null : [i, j];
  };
  pv.addEventListener("click", (ev) => {
    const c = cellAt(ev);
    if (c) loadPairHeads(c[0], c[1]);
  });
  pv.addEventListener("mousemove", (ev) => {
    const c = cellAt(ev);
    if (!c) { ptip.hidden = true; return; }
    const d = state.pair, v = d[$("pair-measure").value][$("pair-dim").value][c[0]][c[1]];
    ptip.hidden = false;
    ptip.textContent = `A ${headName(c[0], d.models[0])} × B ${headName(c[1], d.models[1])}: ` +
      (v == null || !isFinite(v) ? "∞" : v.toFixed(4));
    const rect = pv.closest(".view").getBoundingClientRect();
    ptip.style.left = ev.clientX - rect.left + 14 + "px";
    ptip.style.top = ev.clientY - rect.top + 14 + "px";
  });
  pv.addEventListener("mouseleave", () => { ptip.hidden = true; });
  for (const id of ["pair-measure", "pair-dim"]) $(id).addEventListener("change", () => drawView("pair"));
}

async function init() {
  addExportButtons();
  bindControls();
  try {
    const r = await fetch("api/info");
    state.info = await r.json();
  } catch (e) {
    showError("cannot reach the server: " + e);
    return;
  }
  const m = state.info.model, models = state.info.models || [m];
  $("model").textContent = models.map((x, k) => `${models.length > 1 ? (k ? "B: " : "A: ") : ""}${x.name} · ` +
    `${x.type}, ${x.layers} layers × ${x.heads} heads · ` +
    (x.input === "image" ? `${x.grid[0]}×${x.grid[1]} patches` : `up to ${x.max_tokens} tokens`)).join("   ");
  $("layer").max = m.layers - 1;
  $("head").max = m.heads - 1;
  if (models.length > 1) document.querySelector('[data-view="pair"]').hidden = false;
  if (isImage()) {
    $("image-input").hidden = false;
    $("texts").hidden = true;
    $("image-size").textContent = `${m.image_size}×${m.image_size} pixels, ${m.grid[0]}×${m.grid[1]} patches`;
    document.querySelector('[data-view="sphere"]').hidden = false;
    document.querySelector('[data-view="heatmap2"]').hidden = true;
    $("complex-text").hidden = true;
    for (const h of document.querySelectorAll(".view h2"))
      if (h.firstChild.nodeType === Node.TEXT_NODE)
        h.firstChild.textContent = h.firstChild.textContent.replace("text 1", "the image");
    $("diagram").closest(".view").querySelector("h2 small").textContent = "";
    $("status").textContent = "";
    showError(null);
    $("summary").textContent = "Choose an image (PNG or JPEG) above.";
    return;
  }
  analyze("text");
}

init();

// heatmap.js: a histogram over time on a canvas, as Grafana's heatmap panel
// draws one: time on x, one row per bucket on y (lowest bucket at the
// bottom, rows of equal height whatever the bucket's width, labelled by
// their upper bounds), each cell coloured by its rate, darker to brighter
// orange as the rate grows (square-root scale, Grafana's exponent 0.5).
//
// heatmapCells reads Prometheus range query results of both forms:
// native histograms ("histograms": [[t, {buckets: [[rule, lower, upper,
// count], ...]}]]) and classic buckets (one series per le, cumulative,
// "values"). Series of the same form are summed; a step where both forms
// answer shows both (the dashboard's queries keep them apart).
//
// The chart element exposes what it drew as data- attributes: data-cells
// (non-empty cells drawn), data-buckets (rows), data-max (the highest
// cell value), data-xmin, data-xmax (ms); cellAt(i, b) is the pixel centre
// of the cell of step i and row b, so tests read the colour drawn there.

import { format, isoTime } from './units.js';
import { showTooltip, hideTooltip } from './chart.js';

const AXIS = '#9fa7b3';
const LEFT = 64; // y axis labels
const BOTTOM = 18; // x axis labels
const LOW = [74, 30, 8]; // the colour of the smallest rate above zero
const HIGH = [255, 200, 90]; // the colour of the highest rate

// num reads a Prometheus JSON number ("+Inf", "1e-3", 2).
function num(v) {
  if (v === '+Inf' || v === 'Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  return Number(v);
}

// heatmapCells turns range query results into {buckets: [{lo, hi}] sorted
// bottom to top, cells: [{i, b, v}]} on the n steps start + i*intervalMs
// (ms). Cells with zero or negative rates are left out.
export function heatmapCells(results, start, intervalMs, n) {
  const stepOf = ts => {
    const i = Math.round((ts * 1000 - start) / intervalMs);
    return i >= 0 && i < n ? i : -1;
  };
  const sums = new Map(); // "lo hi" -> {lo, hi, v: Float64Array(n)}
  const add = (lo, hi, i, v) => {
    if (!(v > 0)) return;
    const k = lo + ' ' + hi;
    let row = sums.get(k);
    if (!row) sums.set(k, row = { lo, hi, v: new Float64Array(n) });
    row.v[i] += v;
  };
  const classic = new Map(); // le -> Float64Array(n), cumulative
  for (const s of results) {
    for (const [ts, h] of s.histograms || []) {
      const i = stepOf(ts);
      if (i < 0 || !h) continue;
      for (const [, lo, hi, count] of h.buckets || []) add(num(lo), num(hi), i, num(count));
    }
    const le = s.metric && s.metric.le;
    if (le === undefined || !s.values) continue;
    const bound = num(le);
    if (Number.isNaN(bound)) continue;
    let acc = classic.get(bound);
    if (!acc) classic.set(bound, acc = new Float64Array(n).fill(NaN));
    for (const [ts, v] of s.values) {
      const i = stepOf(ts);
      if (i >= 0) acc[i] = (Number.isNaN(acc[i]) ? 0 : acc[i]) + num(v);
    }
  }
  // Classic buckets are cumulative: a row is its le's count less the
  // next lower le's, from 0 below the lowest.
  const les = [...classic.keys()].sort((a, b) => a - b);
  for (let i = 0; i < n; i++) {
    let prevLe = 0, prev = 0;
    for (const le of les) {
      const c = classic.get(le)[i];
      if (Number.isNaN(c)) continue;
      add(prevLe, le, i, c - prev);
      prevLe = le;
      prev = Math.max(prev, c);
    }
  }
  const rows = [...sums.values()].sort((a, b) => a.lo - b.lo || a.hi - b.hi);
  const cells = [];
  rows.forEach((row, b) => {
    for (let i = 0; i < n; i++) if (row.v[i] > 0) cells.push({ i, b, v: row.v[i] });
  });
  return { buckets: rows.map(r => ({ lo: r.lo, hi: r.hi })), cells };
}

// cellColor is the colour of value v on a scale up to max: LOW to HIGH by
// the square root of v/max.
export function cellColor(v, max) {
  const f = max > 0 ? Math.sqrt(Math.min(1, v / max)) : 1;
  const c = LOW.map((lo, k) => Math.round(lo + (HIGH[k] - lo) * f));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

export class Heatmap {
  // unit is the unit of the bucket bounds (y), cellUnit the unit of the
  // cells' values.
  constructor(el, { unit = 's', cellUnit = 'reqps' } = {}) {
    this.el = el;
    this.unit = unit;
    this.cellUnit = cellUnit;
    this.canvas = document.createElement('canvas');
    this.canvas.style.cssText = 'position: absolute; inset: 0; width: 100%; height: 100%';
    el.append(this.canvas);
    this.data = { buckets: [], cells: [] };
    this.start = 0;
    this.intervalMs = 1;
    this.range = [0, 1];
    this.canvas.addEventListener('mousemove', e => this.hover(e));
    this.canvas.addEventListener('mouseleave', hideTooltip);
    this.ro = new ResizeObserver(() => this.redraw());
    this.ro.observe(el);
  }

  // setData draws heatmapCells' result on steps start + i*intervalMs over
  // [fromMs, toMs].
  setData(data, start, intervalMs, fromMs, toMs) {
    this.data = data;
    this.start = start;
    this.intervalMs = intervalMs;
    this.range = [fromMs, toMs];
    this.max = data.cells.reduce((m, c) => Math.max(m, c.v), 0);
    const ds = this.el.dataset;
    ds.cells = String(data.cells.length);
    ds.buckets = String(data.buckets.length);
    ds.max = String(this.max);
    ds.xmin = String(fromMs);
    ds.xmax = String(toMs);
    this.redraw();
  }

  // geometry is the plot area in CSS pixels.
  geometry() {
    const w = Math.max(100, this.el.clientWidth), h = Math.max(60, this.el.clientHeight);
    return { w, h, x0: LEFT, y0: 4, pw: Math.max(1, w - LEFT - 4), ph: Math.max(1, h - BOTTOM - 4) };
  }

  // cellRect is the rectangle of the cell of step i, row b (CSS pixels).
  cellRect(i, b) {
    const g = this.geometry();
    const [from, to] = this.range;
    const xOf = ms => g.x0 + (ms - from) / (to - from) * g.pw;
    const t = this.start + i * this.intervalMs;
    const x1 = Math.max(g.x0, xOf(t - this.intervalMs / 2)), x2 = Math.min(g.x0 + g.pw, xOf(t + this.intervalMs / 2));
    const rowH = g.ph / Math.max(1, this.data.buckets.length);
    const y = g.y0 + g.ph - (b + 1) * rowH;
    return { x: x1, y, w: x2 - x1, h: rowH };
  }

  // cellAt is the centre of the cell of step i, row b (CSS pixels).
  cellAt(i, b) {
    const r = this.cellRect(i, b);
    return [r.x + r.w / 2, r.y + r.h / 2];
  }

  redraw() {
    const g = this.geometry();
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(g.w * dpr);
    this.canvas.height = Math.round(g.h * dpr);
    const ctx = this.canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, g.w, g.h);
    const { buckets, cells } = this.data;
    for (const c of cells) {
      const r = this.cellRect(c.i, c.b);
      if (r.w <= 0) continue;
      ctx.fillStyle = cellColor(c.v, this.max);
      // A 1px gap between cells, as Grafana's cellGap 1, where they are
      // wide enough to keep some colour.
      const gap = r.w > 3 && r.h > 3 ? 1 : 0;
      ctx.fillRect(r.x, r.y, r.w - gap, r.h - gap);
    }
    ctx.fillStyle = AXIS;
    ctx.font = '11px sans-serif';
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    // Row labels: the upper bound of each row, thinned to fit.
    const rowH = g.ph / Math.max(1, buckets.length);
    const every = Math.max(1, Math.ceil(14 / rowH));
    buckets.forEach((bk, b) => {
      if (b % every) return;
      ctx.fillText(format(bk.hi, this.unit), g.x0 - 4, g.y0 + g.ph - (b + 1) * rowH + Math.min(6, rowH / 2));
    });
    // Time labels at both ends and the middle.
    ctx.textBaseline = 'alphabetic';
    const [from, to] = this.range;
    [[from, 'left'], [(from + to) / 2, 'center'], [to, 'right']].forEach(([t, align], k) => {
      ctx.textAlign = align;
      ctx.fillText(isoTime(t).slice(11, 16), g.x0 + g.pw * k / 2, g.h - 4);
    });
  }

  // hover shows the cell under the pointer: its bucket, time and rate.
  hover(e) {
    const rect = this.canvas.getBoundingClientRect();
    const x = e.clientX - rect.left, y = e.clientY - rect.top;
    const g = this.geometry();
    const n = this.data.buckets.length;
    if (!n || x < g.x0 || y < g.y0 || y > g.y0 + g.ph) return hideTooltip();
    const b = n - 1 - Math.floor((y - g.y0) / (g.ph / n));
    const [from, to] = this.range;
    const t = from + (x - g.x0) / g.pw * (to - from);
    const i = Math.round((t - this.start) / this.intervalMs);
    const c = this.data.cells.find(c => c.i === i && c.b === b);
    const bk = this.data.buckets[b];
    if (!bk) return hideTooltip();
    showTooltip(`${format(bk.lo, this.unit)} – ${format(bk.hi, this.unit)}\n${isoTime(this.start + i * this.intervalMs)}\n${c ? format(c.v, this.cellUnit) : 'none'}`, e.clientX, e.clientY);
  }

  destroy() {
    this.ro.disconnect();
    this.canvas.remove();
  }
}

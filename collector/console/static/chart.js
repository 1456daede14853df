// chart.js: a time-series chart (uPlot) with change markers: every change
// in the chart's range (a deploy, a switch flip, an incident ...) is a
// vertical line in its kind's colour, and a change with a duration (a long
// deploy, a switch away from its default, an open incident) is a band
// from its start to its end (to now while it runs). Its tooltip says who
// changed what; clicking one shows it in the change log. Alerts that fired
// in the range are red regions behind them. The chart element exposes what
// it drew as data- attributes (data-series, data-points, data-xmin,
// data-xmax in ms, data-deploys: the markers drawn, data-bands,
// data-alerts) and each marker its change's time (data-time, ms), id
// (data-deploy-id) and kind (data-kind); each band its start and end
// (data-time, data-end, ms; data-open while running); each alert region its
// alert (data-alertname) and span (data-start, data-end, s). With a trace
// URL template (-console.trace-url) it also draws the exemplars of its
// queries as points linking to their traces (data-exemplars: the points
// drawn).

import { axisFormatter, format, isoTime } from './units.js';
import { relTime } from './format.js';
import { regionText } from './alerts.js';

const MARKED_KINDS = ['deploy', 'switch', 'config', 'incident', 'note', 'alert'];
const kindClass = k => 'kind-' + (MARKED_KINDS.includes(k) ? k : 'other');

/* global uPlot */

// Grafana's classic palette, so colours look familiar.
export const PALETTE = ['#7EB26D', '#EAB839', '#6ED0E0', '#EF843C', '#E24D42', '#1F78C1', '#BA43A9', '#705DA0',
  '#508642', '#CCA300', '#447EBC', '#C15C17', '#890F02', '#0A437C', '#6D1F62', '#584477', '#B7DBAB', '#F4D598',
  '#70DBED', '#F9BA8F', '#F29191', '#82B5D8', '#E5A8E2', '#AEA2E0'];

const AXIS = '#9fa7b3';
const GRID = 'rgba(204, 204, 220, 0.08)';

// deployTitle is "service version by who".
export function deployTitle(d) {
  return [d.service, d.version || '(no version)', d.who ? `by ${d.who}` : ''].filter(Boolean).join(' ');
}

// changeTitle is a change in a few words: a deploy's deployTitle, else
// "switch slow_checkout on (demo) by alice".
export function changeTitle(c) {
  if (!c.kind || c.kind === 'deploy') return deployTitle(c);
  const what = [c.kind, c.subject || c.service, c.fields && c.fields.state, c.version].filter(Boolean).join(' ');
  return [what, c.subject ? `(${c.service})` : '', c.who ? `by ${c.who}` : ''].filter(Boolean).join(' ');
}

// deployText is the tooltip of a change (named for the deploys it began
// with).
export function deployText(d, nowMs = Date.now()) {
  const t = Date.parse(d.time);
  const lines = [changeTitle(d)];
  lines.push([d.env, d.commit && `commit ${d.commit}`, d.status].filter(Boolean).join(' · '));
  let when = `${isoTime(t)} (${relTime(t, nowMs)})`;
  if (d.end_time) when += `, ${d.kind && d.kind !== 'deploy' ? 'lasted' : 'took'} ${format((Date.parse(d.end_time) - t) / 1000, 's')}`;
  else if (d.status === 'running') when += ', still running';
  lines.push(when);
  if (d.message) lines.push(d.message);
  if (d.impact && d.impact.status === 'done') lines.push(`impact: ${d.impact.verdict} — ${d.impact.summary}`);
  return lines.filter(Boolean).join('\n');
}

const tooltip = () => document.getElementById('tooltip');

export function showTooltip(text, clientX, clientY) {
  const tt = tooltip();
  if (!tt) return;
  tt.textContent = text;
  tt.hidden = false;
  const w = tt.offsetWidth, h = tt.offsetHeight;
  let x = clientX + 12, y = clientY + 12;
  if (x + w > window.innerWidth - 4) x = Math.max(4, clientX - w - 12);
  if (y + h > window.innerHeight - 4) y = Math.max(4, clientY - h - 12);
  tt.style.left = x + 'px';
  tt.style.top = y + 'px';
}

export function hideTooltip() {
  const tt = tooltip();
  if (tt) tt.hidden = true;
}

// overlay is a uPlot plugin: a layer of DOM elements over (or, with under,
// beneath the other layers of) the plot, which fill(u, layer, min, max)
// fills for the x range [min, max] in seconds; the count it returns goes to
// the chart element's data-<key>. It refills when the range (of the given
// scales) or size changes, and on redraw().
function overlay(chart, className, key, fill, under = false, scales = ['x']) {
  let layer;
  const draw = u => {
    if (!layer) return;
    layer.replaceChildren();
    const [min, max] = [u.scales.x.min, u.scales.x.max];
    if (min == null || max == null) return;
    chart.el.dataset[key] = String(fill(u, layer, min, max));
  };
  return {
    hooks: {
      ready: u => {
        layer = document.createElement('div');
        layer.className = className;
        if (under) u.over.prepend(layer); else u.over.append(layer);
        draw(u);
      },
      setScale: (u, key) => { if (scales.includes(key)) draw(u); },
      setSize: u => draw(u),
    },
    redraw: () => chart.u && draw(chart.u),
  };
}

// hoverText shows text as the tooltip of e.
function hoverText(e, text) {
  e.setAttribute('aria-label', text);
  e.addEventListener('mouseenter', ev => showTooltip(text, ev.clientX, ev.clientY));
  e.addEventListener('mousemove', ev => showTooltip(text, ev.clientX, ev.clientY));
  e.addEventListener('mouseleave', hideTooltip);
}

// deployMarkers draws chart.deploys (changes of every kind) on the plot.
function deployMarkers(chart) {
  return overlay(chart, 'deploy-layer', 'deploys', (u, layer, min, max) => {
    let n = 0, bands = 0;
    for (const d of chart.deploys) {
      const ms = Date.parse(d.time);
      const t = ms / 1000;
      const open = !d.end_time && d.status === 'running';
      const end = d.end_time ? Date.parse(d.end_time) / 1000 : open ? max : t;
      if (end < min || t > max) continue;
      const left = u.valToPos(Math.max(t, min), 'x');
      const kc = kindClass(d.kind || 'deploy');
      if (end > t) {
        const band = document.createElement('div');
        band.className = `deploy-band change-band ${kc}` + (open ? ' open' : '');
        band.style.left = left + 'px';
        band.style.width = Math.max(1, u.valToPos(Math.min(end, max), 'x') - left) + 'px';
        band.dataset.time = String(ms);
        band.dataset.deployId = d.id;
        if (d.end_time) band.dataset.end = String(Date.parse(d.end_time));
        else band.dataset.open = 'true';
        layer.append(band);
        bands++;
      }
      if (t < min) continue;
      const m = document.createElement('div');
      m.className = `deploy-marker ${kc}` + (d.status && d.status !== 'success' && d.status !== 'running' && d.status !== 'resolved' ? ' deploy-bad' : '');
      m.style.left = left + 'px';
      m.dataset.time = String(ms);
      m.dataset.deployId = d.id;
      m.dataset.kind = d.kind || 'deploy';
      hoverText(m, deployText(d));
      m.addEventListener('click', () => chart.onDeployClick && chart.onDeployClick(d));
      layer.append(m);
      n++;
    }
    chart.el.dataset.bands = String(bands);
    return n;
  });
}

// alertLayer draws chart.alerts (firing regions) beneath the change
// markers.
function alertLayer(chart) {
  return overlay(chart, 'alert-layer', 'alerts', (u, layer, min, max) => {
    let n = 0;
    for (const r of chart.alerts) {
      if (r.end < min || r.start > max) continue;
      const left = u.valToPos(Math.max(r.start, min), 'x');
      const band = document.createElement('div');
      band.className = 'alert-region';
      band.style.left = left + 'px';
      band.style.width = Math.max(2, u.valToPos(Math.min(r.end, max), 'x') - left) + 'px';
      band.dataset.alertname = r.alertname;
      band.dataset.start = String(r.start);
      band.dataset.end = String(r.end);
      hoverText(band, regionText(r));
      layer.append(band);
      n++;
    }
    return n;
  }, true);
}

// traceLink expands the trace URL template (-console.trace-url): each
// {{name}} becomes the exemplar label name's value, URL-escaped. It
// returns '' when the template is empty or names a label the exemplar
// lacks: such an exemplar is drawn without a link.
export function traceLink(template, labels) {
  if (!template) return '';
  let missing = false;
  const url = template.replace(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g, (_, name) => {
    const v = labels && labels[name];
    if (!v) missing = true;
    return encodeURIComponent(v || '');
  });
  return missing ? '' : url;
}

// exemplarText is the tooltip of an exemplar: its value, time and labels.
export function exemplarText(e, unit) {
  const lines = [`exemplar ${format(e.value, unit)} at ${isoTime(e.t * 1000)}`];
  for (const [k, v] of Object.entries(e.labels || {})) lines.push(`${k}=${v}`);
  return lines.join('\n');
}

// exemplarLayer draws chart.exemplars ({t (s), value, labels}) as points
// at their time and value, each a link to its trace when the trace URL
// template gives one (data-trace-url), with data-time (ms) and data-value.
// Points outside the plot are left out.
function exemplarLayer(chart) {
  return overlay(chart, 'exemplar-layer', 'exemplars', (u, layer, min, max) => {
    let n = 0;
    const [ymin, ymax] = [u.scales.y.min, u.scales.y.max];
    for (const e of chart.exemplars) {
      if (e.t < min || e.t > max || !(e.value >= ymin && e.value <= ymax)) continue;
      const href = traceLink(chart.traceURL, e.labels);
      const p = document.createElement(href ? 'a' : 'span');
      p.className = 'exemplar';
      if (href) {
        p.href = href;
        p.target = '_blank';
        p.rel = 'noopener noreferrer';
        p.dataset.traceUrl = href;
      }
      p.style.left = u.valToPos(e.t, 'x') + 'px';
      p.style.top = u.valToPos(e.value, 'y') + 'px';
      p.dataset.time = String(Math.round(e.t * 1000));
      p.dataset.value = String(e.value);
      hoverText(p, exemplarText(e, chart.unit));
      layer.append(p);
      n++;
    }
    return n;
  }, false, ['x', 'y']); // points sit at a value: follow the y scale too
}

// Chart draws series over a fixed time range in el.
export class Chart {
  constructor(el, { unit = 'short', onDeployClick, traceURL = '' } = {}) {
    this.el = el;
    this.unit = unit;
    this.onDeployClick = onDeployClick;
    this.traceURL = traceURL;
    this.deploys = [];
    this.alerts = [];
    this.exemplars = [];
    this.u = null;
    this.labels = '';
    this.range = [0, 1];
    this.markers = deployMarkers(this);
    this.regions = alertLayer(this);
    this.points = exemplarLayer(this);
    this.ro = new ResizeObserver(() => this.resize());
    this.ro.observe(el);
  }

  size() {
    return { width: Math.max(100, this.el.clientWidth), height: Math.max(60, this.el.clientHeight) };
  }

  // setData draws xs (seconds) and series [{label, values}] over
  // [fromMs, toMs]. uPlot draws in a microtask: await a microtask after
  // it to time the drawing.
  setData(xs, series, fromMs, toMs) {
    this.range = [fromMs / 1000, toMs / 1000];
    const data = [xs, ...series.map(s => s.values)];
    const labels = series.map(s => s.label).join('\u0000');
    if (this.u && labels === this.labels) {
      this.u.batch(() => {
        this.u.setData(data, false);
        this.u.setScale('x', { min: this.range[0], max: this.range[1] });
      });
    } else {
      this.destroyPlot();
      this.labels = labels;
      this.u = new uPlot(this.options(series), data, this.el);
      this.fitLegend();
    }
    let points = 0;
    for (const s of series) for (const v of s.values) if (v !== null) points++;
    const ds = this.el.dataset;
    ds.series = String(series.length);
    ds.points = String(points);
    ds.xmin = String(fromMs);
    ds.xmax = String(toMs);
  }

  setDeploys(deploys) {
    this.deploys = deploys;
    this.markers.redraw();
  }

  // setAlerts sets the firing regions to draw ({alertname, labels, start,
  // end} in seconds).
  setAlerts(regions) {
    this.alerts = regions;
    this.regions.redraw();
  }

  // setExemplars sets the exemplars to draw ({t in s, value, labels}).
  setExemplars(exemplars) {
    this.exemplars = exemplars;
    this.points.redraw();
  }

  options(series) {
    const unit = this.unit;
    const { width, height } = this.size();
    const many = series.length > 24;
    return {
      width, height,
      pxAlign: 0,
      scales: { x: { time: true, range: () => this.range }, y: { range: (u, min, max) => yRange(min, max, unit) } },
      series: [
        { value: (u, v) => (v == null ? '' : isoTime(v * 1000)) },
        ...series.map((s, i) => ({
          label: s.label,
          stroke: PALETTE[i % PALETTE.length],
          width: many ? 1 : 1.5,
          spanGaps: false,
          value: (u, v) => (v == null ? '' : format(v, unit)),
        })),
      ],
      axes: [
        { stroke: AXIS, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1 }, space: 80 },
        {
          stroke: AXIS, grid: { stroke: GRID, width: 1 }, ticks: { show: false },
          values: axisFormatter(unit),
          size: (u, values) => (values ? Math.max(...values.map(v => v.length), 3) * 7 + 14 : 40),
        },
      ],
      legend: { show: true, live: true },
      cursor: { sync: { key: 'telltale' }, drag: { x: false, y: false, setScale: false }, focus: { prox: 16 } },
      focus: { alpha: 0.35 },
      plugins: [this.regions, this.points, this.markers],
    };
  }

  // fitLegend shrinks the plot so plot and legend fill the element.
  fitLegend() {
    const lg = this.u && this.u.root.querySelector('.u-legend');
    const lh = lg ? lg.offsetHeight : 0;
    const { width, height } = this.size();
    this.u.setSize({ width, height: Math.max(60, height - lh) });
  }

  resize() {
    if (!this.u) return;
    const { width, height } = this.size();
    const lg = this.u.root.querySelector('.u-legend');
    const lh = lg ? lg.offsetHeight : 0;
    const h = Math.max(60, height - lh);
    if (Math.abs(this.u.width - width) > 1 || Math.abs(this.u.height - h) > 1) this.u.setSize({ width, height: h });
  }

  // redraw repaints without new data (for timing); returns ms.
  redraw() {
    const t0 = performance.now();
    if (this.u) this.u.batch(() => this.u.redraw(true, true)); // batch: draw now, not in a microtask
    return performance.now() - t0;
  }

  destroyPlot() {
    if (this.u) this.u.destroy();
    this.u = null;
  }

  destroy() {
    this.ro.disconnect();
    this.destroyPlot();
  }
}

// yRange pads the y range a little and keeps 0 in view for non-negative
// data, like Grafana's auto min; percentunit stays within sense.
function yRange(min, max, unit) {
  if (min == null || max == null) return [0, 1];
  if (min === max) {
    const d = Math.abs(min) * 0.1 || 1;
    return [min >= 0 ? 0 : min - d, max + d];
  }
  const pad = (max - min) * 0.05;
  let lo = min >= 0 ? 0 : min - pad;
  let hi = max + pad;
  if (unit === 'percentunit' && max <= 1 && hi > 1) hi = 1;
  return [lo, hi];
}

// live.js: the live view: a series selector opens the websocket tail
// (/api/v1/tail?match[]=...) and shows samples and changes (deploys,
// switch flips, notes ...) as they arrive: a scrolling table, newest on top, and a sparkline per series.
// Each table row records when it arrived (data-received, ms since the
// epoch) so tests can measure the delay from write to screen.

import * as api from './api.js';
import { el } from './format.js';
import { isoTime, format } from './units.js';
import { seriesName } from './vars.js';
import { changeTitle } from './chart.js';

const MAX_ROWS = 500;
const MAX_SERIES = 200;
const SPARK_POINTS = 120;
export const DEFAULT_MATCH = '{__name__=~"node_load1|node_memory_MemAvailable_bytes|http_requests_total"}';
const DEFAULT_RATE = 500;

export class LiveView {
  // opts: {match, onMatch(match), onDeploy(deploy), state}
  constructor(root, opts) {
    this.root = root;
    this.opts = opts;
    this.ws = null;
    this.stopped = true;
    this.retry = 0;
    this.series = new Map(); // key -> {name, points: [], row el, canvas, value el}
    this.dirty = new Set();
    this.state = opts.state;
    this.state.live = { status: 'idle', samples: 0, deploys: 0 };
    this.build();
  }

  build() {
    this.input = el('input', {
      id: 'live-match', type: 'text', spellcheck: 'false', value: this.opts.match || DEFAULT_MATCH,
      placeholder: 'http_requests_total{service="api"}', 'aria-label': 'Series selector',
    });
    this.rate = el('input', { id: 'live-rate', type: 'number', min: '1', step: '1', value: String(DEFAULT_RATE), title: 'At most this many samples per second (max_rate); the server says how many it held back' });
    this.button = el('button', { type: 'submit', id: 'live-toggle' }, 'Start');
    this.status = el('span', { id: 'live-status', class: 'live-status' }, 'stopped');
    this.form = el('form', { class: 'live-form', onsubmit: e => { e.preventDefault(); this.toggle(); } },
      el('label', { class: 'grow' }, 'Series selector', this.input),
      el('label', {}, 'max samples/s', this.rate),
      this.button, this.status);
    this.sparks = el('div', { class: 'sparks', id: 'live-series' });
    this.tbody = el('tbody');
    this.table = el('table', { class: 'live-table', id: 'live-table' },
      el('thead', {}, el('tr', {}, el('th', {}, 'received'), el('th', {}, 'sample time'), el('th', {}, 'series'), el('th', {}, 'value'))),
      this.tbody);
    this.root.replaceChildren(
      el('div', { class: 'dash-head' }, el('h1', {}, 'Live'),
        el('p', { class: 'muted' }, 'Samples as the collector commits them, and changes (deploys, switch flips, notes ...) as they are recorded. Use a PromQL series selector; several: {__name__=~"a|b"}.')),
      this.form,
      el('div', { class: 'live-body' },
        el('section', { class: 'panel live-series' }, el('header', { class: 'panel-head' }, el('h3', {}, 'Series')), this.sparks),
        el('section', { class: 'panel live-events' }, el('header', { class: 'panel-head' }, el('h3', {}, 'Samples and changes')),
          el('div', { class: 'live-scroll' }, this.table))));
  }

  toggle() {
    if (this.stopped) this.start(); else this.stop('stopped');
  }

  setStatus(s, text) {
    this.state.live.status = s;
    this.status.textContent = text || s;
    this.status.dataset.status = s;
    this.root.dataset.liveStatus = s;
  }

  start() {
    const match = this.input.value.trim();
    if (!match) {
      this.setStatus('error', 'enter a series selector, e.g. up{job="api"}');
      return;
    }
    if (this.opts.onMatch) this.opts.onMatch(match);
    this.stopped = false;
    this.button.textContent = 'Stop';
    this.connect(match);
  }

  connect(match) {
    this.close();
    this.match = match;
    const rate = Number(this.rate.value) > 0 ? Number(this.rate.value) : 0;
    this.setStatus('connecting', 'connecting…');
    let subscribed = false;
    const ws = new WebSocket(api.tailURL([match], rate));
    this.ws = ws;
    ws.onmessage = ev => {
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      if (m.type === 'subscribed') {
        subscribed = true;
        this.retry = 0;
        this.setStatus('subscribed', `live: ${m.selectors.join(', ')}`);
      } else if (m.type === 'samples') {
        this.onSamples(m.samples || []);
      } else if (m.type === 'deploy') {
        this.onDeploy(m.deploy);
      } else if (m.type === 'change') {
        this.onDeploy(m.change);
      } else if (m.type === 'notice') {
        this.addRow(el('tr', { class: 'notice' }, el('td', {}, isoTime(m.time)), el('td', { colspan: 3 }, m.text || m.notice)));
      }
    };
    ws.onclose = async ev => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (!subscribed) {
        const why = await api.tailProblem([match]);
        if (why && !/^503/.test(why)) {
          this.stopped = true;
          this.button.textContent = 'Start';
          this.setStatus('error', why);
          return;
        }
      }
      const wait = Math.min(30000, 1000 * 2 ** this.retry++);
      this.setStatus('reconnecting', `disconnected (${ev.code}${ev.reason ? ' ' + ev.reason : ''}); reconnecting in ${wait / 1000}s`);
      this.timer = setTimeout(() => { if (!this.stopped) this.connect(match); }, wait);
    };
  }

  onSamples(samples) {
    const now = Date.now();
    const frag = document.createDocumentFragment();
    for (let i = samples.length - 1; i >= 0; i--) {
      const s = samples[i];
      const name = seriesName(s.labels);
      // A native histogram sample ("h", as Prometheus' API renders one)
      // shows its count and sum; its sparkline follows the count.
      const h = s.h;
      const raw = h ? h.count : s.v;
      const v = Number(raw);
      const shown = h ? `count ${liveValue('', v)} sum ${liveValue(name, Number(h.sum))}` : liveValue(name, v);
      const title = h ? `native histogram: count ${h.count}, sum ${h.sum}, ${(h.buckets || []).length} buckets` : s.v;
      frag.append(el('tr', { dataset: { received: String(now), t: String(s.t), series: name, value: raw } },
        el('td', { class: 'muted' }, isoTime(now)), el('td', {}, isoTime(s.t)), el('td', { class: 'series' }, name),
        el('td', { class: 'num', title }, shown)));
      this.track(name, s.t, v);
    }
    this.state.live.samples += samples.length;
    this.state.live.lastReceived = now;
    this.addRow(frag);
    this.scheduleSparks();
  }

  // onDeploy shows a change (a deploy or any other kind) as it arrives.
  onDeploy(d) {
    const now = Date.now();
    const kind = d.kind || 'deploy';
    this.addRow(el('tr', { class: kind === 'deploy' ? 'deploy' : `change kind-${kind}`, dataset: { received: String(now), deployId: d.id, kind } },
      el('td', { class: 'muted' }, isoTime(now)), el('td', {}, isoTime(Date.parse(d.time))),
      el('td', { colspan: 2 }, `${kind}: ${kind === 'deploy' ? changeTitle(d) : changeTitle(d).replace(kind + ' ', '')}${d.env ? ' (' + d.env + ')' : ''}${d.message ? ' — ' + d.message : ''}`)));
    this.state.live.deploys++;
    if (this.opts.onDeploy) this.opts.onDeploy(d);
  }

  addRow(node) {
    this.tbody.prepend(node);
    while (this.tbody.childElementCount > MAX_ROWS) this.tbody.lastElementChild.remove();
  }

  track(name, t, v) {
    let s = this.series.get(name);
    if (!s) {
      if (this.series.size >= MAX_SERIES) return;
      const canvas = el('canvas', { class: 'spark', width: '160', height: '28' });
      const value = el('span', { class: 'num' });
      s = { name, points: [], canvas, value };
      s.row = el('div', { class: 'spark-row', dataset: { series: name } },
        el('span', { class: 'spark-name', title: name }, name), canvas, value);
      this.sparks.append(s.row);
      this.series.set(name, s);
    }
    s.points.push([t, v]);
    if (s.points.length > SPARK_POINTS) s.points.shift();
    s.value.textContent = liveValue(name, v);
    s.value.title = String(v);
    s.row.dataset.points = String(s.points.length);
    this.dirty.add(s);
  }

  scheduleSparks() {
    if (this.raf) return;
    this.raf = requestAnimationFrame(() => {
      this.raf = 0;
      for (const s of this.dirty) drawSpark(s.canvas, s.points);
      this.dirty.clear();
    });
  }

  close() {
    clearTimeout(this.timer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, 'closed by the viewer');
    }
  }

  stop(why) {
    this.stopped = true;
    this.close();
    this.button.textContent = 'Start';
    this.setStatus('stopped', why);
  }

  destroy() {
    this.stop('stopped');
    cancelAnimationFrame(this.raf);
  }
}

// liveValue formats a live sample for reading (12.3 GiB, 1.2 s, 12.3 K)
// with the unit its metric name's suffix says; the exact value is in the
// cell's title and the row's data-value.
export function liveValue(name, v) {
  const metric = name.split('{')[0];
  let unit = 'short';
  if (/_bytes(_total)?$/.test(metric)) unit = 'bytes';
  else if (/_seconds(_total)?$/.test(metric)) unit = 's';
  return format(v, unit);
}

function drawSpark(canvas, points) {
  const dpr = window.devicePixelRatio || 1;
  const w = 160, h = 28;
  if (canvas.width !== w * dpr) {
    canvas.width = w * dpr;
    canvas.height = h * dpr;
  }
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const ok = points.filter(p => Number.isFinite(p[1]));
  if (!ok.length) return;
  let t0 = ok[0][0], t1 = ok[ok.length - 1][0];
  let lo = Infinity, hi = -Infinity;
  for (const [, v] of ok) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (ok.length === 1) {
    g.fillStyle = '#73bf69';
    g.fillRect(w - 5, h / 2 - 1.5, 3, 3);
    return;
  }
  if (hi === lo) { hi += 1; lo -= 1; }
  if (t1 === t0) t1 = t0 + 1;
  g.strokeStyle = '#73bf69';
  g.lineWidth = 1.5;
  g.beginPath();
  ok.forEach(([t, v], i) => {
    const x = 2 + (w - 4) * (t - t0) / (t1 - t0);
    const y = h - 3 - (h - 6) * (v - lo) / (hi - lo);
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.stroke();
}

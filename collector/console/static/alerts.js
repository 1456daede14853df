// alerts.js: the alerts of the rules engine in the console: a strip on top
// of every page listing the alerts firing or pending now (/api/v1/alerts),
// each with its summary and the changes of its service that preceded it
// (the telltale_changes annotation); and the regions of the time range in
// which alerts fired (ALERTS{alertstate="firing"}), which every chart draws
// beside the deploy markers.

import * as api from './api.js';
import { el, relTime, safeURL } from './format.js';
import { isoTime } from './units.js';

// Annotations the collector adds to alerts of a service.
export const CHANGES = 'telltale_changes';
export const CHANGE_LINK = 'telltale_change_link';

// alertRegions turns the matrix of ALERTS{alertstate="firing"} over a range
// queried at stepS into regions: one per run of points without a gap
// longer than 1.5 steps, {alertname, labels, start, end} in seconds (end is
// the last point: the alert fired at least until then).
export function alertRegions(matrix, stepS) {
  const out = [];
  for (const s of matrix || []) {
    const labels = { ...s.metric };
    delete labels.__name__;
    delete labels.alertstate;
    let start = null, last = null;
    for (const [t] of s.values || []) {
      if (last !== null && t - last > 1.5 * stepS) {
        out.push({ alertname: labels.alertname || '', labels, start, end: last });
        start = null;
      }
      if (start === null) start = t;
      last = t;
    }
    if (start !== null) out.push({ alertname: labels.alertname || '', labels, start, end: last });
  }
  out.sort((a, b) => a.start - b.start || a.alertname.localeCompare(b.alertname));
  return out;
}

// regionText is the tooltip of a region.
export function regionText(r) {
  const who = [r.labels.service, r.labels.env, r.labels.instance].filter(Boolean).join(' ');
  const lines = [`${r.alertname} firing${who ? ' · ' + who : ''}`];
  lines.push(`${isoTime(r.start * 1000)} – ${isoTime(r.end * 1000)}`);
  if (r.labels.severity) lines.push(`severity ${r.labels.severity}`);
  return lines.join('\n');
}

// stepFor is the query step for firing regions over [fromMs, toMs]: about
// 300 points, at least 10 s.
export function stepFor(fromMs, toMs) {
  return Math.max(10, Math.ceil((toMs - fromMs) / 1000 / 300));
}

// AlertBar shows the active alerts and loads the firing regions.
export class AlertBar {
  constructor() {
    this.root = document.getElementById('alerts');
    this.list = [];
    this.regions = [];
  }

  // load fetches the active alerts and the regions of [fromMs, toMs];
  // it resolves to the regions (a collector without rules has none). A
  // failure other than an abort keeps what was shown and says why in the
  // strip's title; a missing token is the page's prompt's business.
  async load(fromMs, toMs, signal) {
    const step = stepFor(fromMs, toMs);
    let active, matrix;
    try {
      [active, matrix] = await Promise.all([
        api.request('/api/v1/alerts', { signal }),
        api.queryRange('ALERTS{alertstate="firing"}', fromMs, toMs, step, signal),
      ]);
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      if (this.root) this.root.title = `alerts not loaded: ${e.message}`;
      return this.regions;
    }
    if (this.root) this.root.title = '';
    this.list = (active.alerts || []).filter(a => a.state === 'firing' || a.state === 'pending');
    this.list.sort((a, b) => (a.state === b.state ? Date.parse(a.activeAt) - Date.parse(b.activeAt) : a.state === 'firing' ? -1 : 1));
    this.regions = alertRegions(matrix.result, step);
    this.render();
    return this.regions;
  }

  render() {
    if (!this.root) return;
    this.root.hidden = this.list.length === 0;
    this.root.dataset.alerts = String(this.list.length);
    const items = this.list.map(a => {
      const L = a.labels || {}, A = a.annotations || {};
      const who = [L.service, L.env, L.instance].filter(Boolean).join(' ');
      const link = safeURL(A[CHANGE_LINK] || '');
      return el('li', { class: 'alert alert-' + a.state, dataset: { alertname: L.alertname || '', state: a.state } },
        el('span', { class: 'alert-state' }, a.state),
        el('strong', { class: 'alert-name' }, L.alertname || '(unnamed)'),
        who && el('span', { class: 'alert-who' }, who),
        L.severity && el('span', { class: 'alert-severity' }, L.severity),
        el('span', { class: 'muted', title: isoTime(Date.parse(a.activeAt)) }, `active ${relTime(Date.parse(a.activeAt))}`),
        A.summary && el('span', { class: 'alert-summary' }, A.summary),
        A[CHANGES] && el('div', { class: 'alert-changes' }, A[CHANGES], link && ' ', link && el('a', { href: link, target: '_blank', rel: 'noopener noreferrer' }, 'change')));
    });
    this.root.replaceChildren(el('h2', {}, 'Alerts'), el('ul', { class: 'alert-list' }, items));
  }
}

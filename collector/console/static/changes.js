// changes.js: the change log on top of every page: every kind of change
// (deploys, switch flips, config changes, incidents, notes, alerts ...),
// newest first — when, who, what, where, status, the impact verdict, the
// link to the change — with service, env and text filters, a legend of
// the kinds that doubles as toggles (they hide a kind in the log and on
// every graph), and the newest change in one line.

import * as api from './api.js';
import { el, relTime, safeURL } from './format.js';
import { isoTime } from './units.js';
import { changeTitle } from './chart.js';

const TABLE_ROWS = 200; // rows shown; the markers get up to LIMIT changes
const LIMIT = 1000;

// KINDS are the kinds the log knows; any other kind is drawn as "other".
export const KINDS = ['deploy', 'switch', 'config', 'incident', 'note', 'alert'];

// kindClass is the CSS class of a kind's colour.
export function kindClass(kind) {
  return 'kind-' + (KINDS.includes(kind) ? kind : 'other');
}

const HIDDEN_KEY = 'telltale.hiddenKinds';

function loadHidden() {
  try { return new Set(JSON.parse(localStorage.getItem(HIDDEN_KEY) || '[]')); } catch { return new Set(); }
}

function saveHidden(s) {
  try { localStorage.setItem(HIDDEN_KEY, JSON.stringify([...s])); } catch { /* private mode */ }
}

// impactText is the verdict beside a change: "regressed", "pending" ...
export function impactText(c) {
  const im = c.impact;
  if (!im) return '';
  if (im.status === 'done') return im.verdict.replaceAll('_', ' ');
  return im.status;
}

export class ChangeLog {
  // filter: {service, env, q}; onFilter(filter) is called when the viewer
  // changes it; onKinds() when a kind is shown or hidden.
  constructor({ filter = {}, onFilter, onKinds } = {}) {
    this.filter = { service: filter.service || '', env: filter.env || '', q: filter.q || '' };
    this.onFilter = onFilter;
    this.onKinds = onKinds;
    this.hidden = loadHidden();
    this.list = [];
    this.last = null;
    this.available = true;
    this.known = { service: new Set(), env: new Set() };
    this.tbody = document.querySelector('#deploy-table tbody');
    this.empty = document.getElementById('deploy-empty');
    this.lastEl = document.getElementById('last-deploy');
    this.kindsEl = document.getElementById('change-kinds');
    this.search = document.getElementById('change-q');
    this.selects = { service: document.getElementById('deploy-service'), env: document.getElementById('deploy-env') };
    for (const [k, sel] of Object.entries(this.selects)) {
      sel.addEventListener('change', () => {
        this.filter[k] = sel.value;
        if (this.onFilter) this.onFilter({ ...this.filter });
      });
    }
    this.search.value = this.filter.q;
    this.search.form.addEventListener('submit', e => {
      e.preventDefault();
      this.filter.q = this.search.value.trim();
      if (this.onFilter) this.onFilter({ ...this.filter });
    });
    this.renderFilters();
    this.renderKinds();
  }

  // shown reports whether change c's kind is not toggled off.
  shown(c) {
    return !this.hidden.has(KINDS.includes(c.kind) ? c.kind : 'other');
  }

  // visible is the loaded changes of the kinds shown: what the graphs mark.
  visible() {
    return this.list.filter(c => this.shown(c));
  }

  // load fetches the changes overlapping [fromMs, toMs] and the newest one.
  async load(fromMs, toMs, signal) {
    const f = { service: this.filter.service, env: this.filter.env, q: this.filter.q };
    try {
      this.list = await api.changes({ ...f, from: fromMs, to: toMs, limit: LIMIT }, signal);
      this.available = true;
      this.error = null;
      this.last = this.list.find(c => this.shown(c)) || null;
      if (!this.last && !f.q) {
        const l = await api.changes({ ...f, limit: 1 }, signal);
        this.last = l[0] || null;
      }
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      this.list = [];
      this.last = null;
      this.available = e.status !== 404;
      this.error = e;
    }
    for (const d of this.list.concat(this.last ? [this.last] : [])) {
      if (d.service) this.known.service.add(d.service);
      if (d.env) this.known.env.add(d.env);
    }
    this.render(fromMs);
    return this.list;
  }

  renderFilters() {
    for (const [k, sel] of Object.entries(this.selects)) {
      const values = [...new Set([...this.known[k], this.filter[k]].filter(Boolean))].sort();
      const want = ['', ...values].join('\u0000');
      if (sel.dataset.options !== want) {
        sel.replaceChildren(el('option', { value: '' }, 'all'), ...values.map(v => el('option', { value: v }, v)));
        sel.dataset.options = want;
      }
      sel.value = this.filter[k];
    }
  }

  // renderKinds draws the legend: one toggle per kind, in its colour, with
  // how many changes of it the range holds.
  renderKinds() {
    const counts = new Map();
    for (const c of this.list) {
      const k = KINDS.includes(c.kind) ? c.kind : 'other';
      counts.set(k, (counts.get(k) || 0) + 1);
    }
    const kinds = [...KINDS, ...(counts.has('other') ? ['other'] : [])];
    this.kindsEl.replaceChildren(...kinds.map(k => {
      const box = el('input', { type: 'checkbox', checked: !this.hidden.has(k), dataset: { kind: k } });
      box.addEventListener('change', () => {
        if (box.checked) this.hidden.delete(k); else this.hidden.add(k);
        saveHidden(this.hidden);
        this.render();
        if (this.onKinds) this.onKinds();
      });
      return el('label', { class: `kind-toggle ${kindClass(k)}`, title: `show ${k} changes in the log and on the graphs` },
        box, el('span', { class: 'kind-dot' }), `${k} ${counts.get(k) || 0}`);
    }));
  }

  render(fromMs) {
    if (fromMs !== undefined) this.fromMs = fromMs;
    this.renderFilters();
    this.renderKinds();
    const now = Date.now();
    // The newest change, one line.
    if (this.last) {
      const d = this.last;
      const t = Date.parse(d.time);
      const link = safeURL(d.link);
      this.lastEl.replaceChildren(...[
        el('span', { class: `label ${kindClass(d.kind)}` }, `Last ${d.kind || 'change'} `),
        el('strong', { class: 'last-title' }, changeTitle(d)),
        d.env ? el('span', { class: 'pill' }, d.env) : null,
        el('time', { datetime: d.time, title: isoTime(t) }, ' ' + relTime(t, now)),
        d.message ? el('span', { class: 'muted' }, ' — ' + d.message) : null,
        impactText(d) ? el('span', { class: `verdict verdict-${d.impact.verdict || d.impact.status}`, title: d.impact.summary || '' }, ' ' + impactText(d)) : null,
        link ? el('a', { href: link, target: '_blank', rel: 'noopener noreferrer' }, ' change ↗') : null,
      ].filter(Boolean));
      this.lastEl.dataset.deployId = d.id;
    } else {
      this.lastEl.replaceChildren(el('span', { class: 'muted' }, this.available && !this.error ? 'No change recorded yet' : ''));
      delete this.lastEl.dataset.deployId;
    }
    // The table.
    const shown = this.visible();
    const rows = shown.slice(0, TABLE_ROWS).map(d => this.row(d, now));
    this.tbody.replaceChildren(...rows);
    this.empty.hidden = rows.length > 0;
    if (!this.available) {
      this.empty.textContent = 'This collector has no change API (GET /api/v1/changes answered 404), so there is no change log.';
    } else if (this.error) {
      this.empty.textContent = `Cannot load the change log: ${this.error.message}`;
    } else if (this.filter.q) {
      this.empty.textContent = `No change matches "${this.filter.q}" in this range.`;
    } else if (this.list.length > 0) {
      this.empty.textContent = 'Every change in this range is of a kind toggled off above.';
    } else {
      const since = this.fromMs ? ` since ${isoTime(this.fromMs)}` : '';
      this.empty.textContent = `No changes${since}. Record a deploy of the demo: annotator deploy -service demo -version v1 -collector ${location.origin}` +
        ` (or curl -d '{"service":"demo","version":"v1","who":"'$USER'"}' ${location.origin}/api/v1/deploys); flip a switch: annotator switch -service demo slow_checkout on -reason test`;
    }
    if (shown.length > TABLE_ROWS) {
      this.tbody.append(el('tr', { class: 'more' }, el('td', { colspan: 10 }, `… and ${shown.length - TABLE_ROWS} older changes in this range`)));
    }
  }

  // row is one change. The columns keep the deploy log's order (when, who,
  // service, env, version, commit, status, what, link) and add the impact;
  // the kind is the coloured badge in the first cell. For other kinds the
  // version column names the subject and its state.
  row(d, now) {
    const t = Date.parse(d.time);
    const link = safeURL(d.link);
    const status = d.status || 'success';
    const kind = d.kind || 'deploy';
    const version = kind === 'deploy' ? (d.version || '') : [d.subject, d.fields && d.fields.state, d.version].filter(Boolean).join(' ');
    const verdict = impactText(d);
    return el('tr', { class: kindClass(kind), dataset: { deployId: d.id, changeId: d.id, kind, time: String(t) } },
      el('td', { class: 'when' }, el('span', { class: 'kind-badge', title: kind }, kind),
        el('time', { datetime: d.time, title: relTime(t, now) }, isoTime(t)),
        el('span', { class: 'muted' }, ' ' + relTime(t, now))),
      el('td', { class: 'who' }, d.who || '—'),
      el('td', { class: 'service' }, d.service),
      el('td', {}, d.env || ''),
      el('td', { class: 'version' }, version),
      el('td', { class: 'commit' }, (d.commit || '').slice(0, 12)),
      el('td', {}, el('span', { class: `status status-${status}` }, d.end_time && d.end_time !== d.time && kind !== 'deploy' ? `${status} (ended)` : status)),
      el('td', { class: 'what' }, d.message || ''),
      el('td', { class: 'link' }, link ? el('a', { href: link, target: '_blank', rel: 'noopener noreferrer' }, 'change ↗') : ''),
      el('td', { class: 'impact' }, verdict
        ? el('span', { class: `verdict verdict-${d.impact.verdict || d.impact.status}`, title: d.impact.summary || d.impact.last_error || '' }, verdict)
        : ''),
    );
  }

  // highlight scrolls the row of change id into view and flashes it.
  highlight(id) {
    const row = this.tbody.querySelector(`tr[data-deploy-id="${CSS.escape(id)}"]`);
    if (!row) return;
    row.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    document.getElementById('deploys').scrollIntoView({ block: 'start', behavior: 'smooth' });
    row.classList.remove('flash');
    void row.offsetWidth;
    row.classList.add('flash');
  }

  // prepend adds (or replaces) a change that just arrived on the live tail.
  prepend(d) {
    this.list = [d, ...this.list.filter(x => x.id !== d.id)];
    if (this.shown(d)) this.last = d;
    this.render();
  }
}

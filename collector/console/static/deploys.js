// deploys.js: the deploy log on top of every page: newest first, who, when,
// what, version, link to the change, with service and env filters, and the
// last deploy in one line.

import * as api from './api.js';
import { el, relTime, safeURL } from './format.js';
import { isoTime } from './units.js';
import { deployTitle } from './chart.js';

const TABLE_ROWS = 200; // rows shown; the markers get up to LIMIT deploys
const LIMIT = 1000;

export class DeployLog {
  // filter: {service, env}; onFilter(filter) is called when the viewer
  // changes it.
  constructor({ filter = {}, onFilter } = {}) {
    this.filter = { service: filter.service || '', env: filter.env || '' };
    this.onFilter = onFilter;
    this.list = [];
    this.last = null;
    this.available = true;
    this.known = { service: new Set(), env: new Set() };
    this.tbody = document.querySelector('#deploy-table tbody');
    this.empty = document.getElementById('deploy-empty');
    this.lastEl = document.getElementById('last-deploy');
    this.selects = { service: document.getElementById('deploy-service'), env: document.getElementById('deploy-env') };
    for (const [k, sel] of Object.entries(this.selects)) {
      sel.addEventListener('change', () => {
        this.filter[k] = sel.value;
        if (this.onFilter) this.onFilter({ ...this.filter });
      });
    }
    this.renderFilters();
  }

  // load fetches the deploys of [fromMs, toMs] and the last deploy.
  async load(fromMs, toMs, signal) {
    try {
      this.list = await api.deploys({ ...this.filter, from: fromMs, to: toMs, limit: LIMIT }, signal);
      this.available = true;
      this.error = null;
      this.last = this.list[0] || null;
      if (!this.last) {
        const l = await api.deploys({ ...this.filter, limit: 1 }, signal);
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

  render(fromMs) {
    this.renderFilters();
    const now = Date.now();
    // Last deploy, one line.
    if (this.last) {
      const d = this.last;
      const t = Date.parse(d.time);
      const link = safeURL(d.link);
      this.lastEl.replaceChildren(...[
        el('span', { class: 'label' }, 'Last deploy '),
        el('strong', { class: 'last-title' }, deployTitle(d)),
        d.env ? el('span', { class: 'pill' }, d.env) : null,
        el('time', { datetime: d.time, title: isoTime(t) }, ' ' + relTime(t, now)),
        d.message ? el('span', { class: 'muted' }, ' — ' + d.message) : null,
        link ? el('a', { href: link, target: '_blank', rel: 'noopener noreferrer' }, ' change ↗') : null,
      ].filter(Boolean));
      this.lastEl.dataset.deployId = d.id;
    } else {
      this.lastEl.replaceChildren(el('span', { class: 'muted' }, this.available && !this.error ? 'No deploy recorded yet' : ''));
      delete this.lastEl.dataset.deployId;
    }
    // The table.
    const rows = this.list.slice(0, TABLE_ROWS).map(d => this.row(d, now));
    this.tbody.replaceChildren(...rows);
    this.empty.hidden = rows.length > 0;
    if (!this.available) {
      this.empty.textContent = 'This collector has no deploy API (GET /api/v1/deploys answered 404), so there is no deploy log.';
    } else if (this.error) {
      this.empty.textContent = `Cannot load the deploy log: ${this.error.message}`;
    } else {
      const since = fromMs ? ` since ${isoTime(fromMs)}` : '';
      this.empty.textContent = `No deploys${since}. Record one: curl -d '{"service":"api","version":"v1","who":"'$USER'"}' ${location.origin}/api/v1/deploys`;
    }
    if (this.list.length > TABLE_ROWS) {
      this.tbody.append(el('tr', { class: 'more' }, el('td', { colspan: 9 }, `… and ${this.list.length - TABLE_ROWS} older deploys in this range`)));
    }
  }

  row(d, now) {
    const t = Date.parse(d.time);
    const link = safeURL(d.link);
    const status = d.status || 'success';
    return el('tr', { dataset: { deployId: d.id, time: String(t) } },
      el('td', { class: 'when' }, el('time', { datetime: d.time, title: relTime(t, now) }, isoTime(t)),
        el('span', { class: 'muted' }, ' ' + relTime(t, now))),
      el('td', { class: 'who' }, d.who || '—'),
      el('td', { class: 'service' }, d.service),
      el('td', {}, d.env || ''),
      el('td', { class: 'version' }, d.version || ''),
      el('td', { class: 'commit' }, (d.commit || '').slice(0, 12)),
      el('td', {}, el('span', { class: `status status-${status}` }, status)),
      el('td', { class: 'what' }, d.message || ''),
      el('td', { class: 'link' }, link ? el('a', { href: link, target: '_blank', rel: 'noopener noreferrer' }, 'change ↗') : ''),
    );
  }

  // highlight scrolls the row of deploy id into view and flashes it.
  highlight(id) {
    const row = this.tbody.querySelector(`tr[data-deploy-id="${CSS.escape(id)}"]`);
    if (!row) return;
    row.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    document.getElementById('deploys').scrollIntoView({ block: 'start', behavior: 'smooth' });
    row.classList.remove('flash');
    void row.offsetWidth;
    row.classList.add('flash');
  }

  // prepend adds a deploy that just arrived on the live tail.
  prepend(d) {
    this.list = [d, ...this.list.filter(x => x.id !== d.id)];
    this.last = this.list[0];
    this.render();
  }
}

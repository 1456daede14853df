// dashboard.js: draws a Grafana dashboard model (as dashboards/board
// renders it) in the browser: its variables (label_values queries), rows,
// and its timeseries, heatmap, stat, table and text panels on Grafana's 24-column
// grid, with the changes of the range marked on every graph; a dashboard
// with a service variable also gets the service's contingency switches as
// lanes under its header: when each was away from its default (a band),
// its flips, and a button to flip it with a reason.

import * as api from './api.js';
import { el, markdown, relTime, safeURL } from './format.js';
import { format, isoTime } from './units.js';
import { Chart, PALETTE, changeTitle, showTooltip, hideTooltip } from './chart.js';
import { Heatmap, heatmapCells } from './heatmap.js';
import * as V from './vars.js';

const ROW_PX = 30;

// flattenPanels lists a dashboard's panels in grid order, the panels of
// collapsed rows after their row.
export function flattenPanels(dash) {
  const out = [];
  for (const p of dash.panels || []) {
    out.push(p);
    if (p.type === 'row' && Array.isArray(p.panels)) out.push(...p.panels);
  }
  return out.sort((a, b) => (a.gridPos?.y ?? 0) - (b.gridPos?.y ?? 0) || (a.gridPos?.x ?? 0) - (b.gridPos?.x ?? 0));
}

function unitOf(p) {
  return p.fieldConfig?.defaults?.unit || 'short';
}

function targetsOf(p) {
  return (p.targets || []).filter(t => !t.hide && t.expr);
}

// parseDuration reads Grafana's "30s", "1m", "5m" into ms (0 for none).
function parseDuration(s) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(String(s || '').trim());
  if (!m) return 0;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000 }[m[2]];
}

export class DashboardView {
  // ctx: {config, urlVars (Map name -> [values]), setUrlVar(name, values),
  //       onDeployClick(deploy), state (window.__telltale)}
  constructor(root, dash, ctx) {
    this.root = root;
    this.dash = dash;
    this.ctx = ctx;
    this.vars = {};
    this.varDefs = (dash.templating?.list || []);
    this.panels = [];
    this.deploys = [];
    this.switches = []; // announced switches of the chosen service
    this.range = [0, 1];
    this.alerts = [];
    this.build();
  }

  build() {
    const d = this.dash;
    this.varBar = el('div', { class: 'varbar' });
    this.grid = el('div', { class: 'grid' });
    this.hasService = this.varDefs.some(v => v.name === 'service');
    this.lanes = el('section', { class: 'switch-lanes', id: 'switch-lanes', hidden: true, 'aria-label': 'Contingency switches' });
    this.root.replaceChildren(
      el('div', { class: 'dash-head' },
        el('h1', { title: d.description || '' }, d.title || 'Dashboard'),
        this.varBar),
      this.lanes,
      this.grid);
    for (const p of flattenPanels(d)) this.panels.push(this.buildPanel(p));
  }

  buildPanel(p) {
    const g = p.gridPos || { x: 0, y: 0, w: 24, h: 8 };
    if (p.type === 'row') {
      const e = el('div', { class: 'row-title' }, el('h2', {}, p.title || ''));
      e.style.gridColumn = '1 / -1';
      e.style.gridRow = `${g.y + 1} / span 1`;
      this.grid.append(e);
      return { p, el: e, kind: 'row' };
    }
    const body = el('div', { class: 'panel-body' });
    const links = el('span', { class: 'panel-links' });
    const e = el('section', { class: `panel panel-${p.type}`, dataset: { panelId: String(p.id ?? ''), type: p.type, state: 'loading' } },
      el('header', { class: 'panel-head' },
        el('h3', { title: p.description || '' }, p.title || ''),
        links),
      body);
    e.style.gridColumn = `${g.x + 1} / span ${g.w}`;
    e.style.gridRow = `${g.y + 1} / span ${g.h}`;
    e.style.minHeight = `${g.h * ROW_PX + (g.h - 1) * 8}px`;
    this.grid.append(e);
    const panel = { p, el: e, body, links, kind: p.type };
    if (p.type === 'timeseries') {
      const chartEl = el('div', { class: 'chart' });
      body.append(chartEl);
      panel.chart = new Chart(chartEl, { unit: unitOf(p), onDeployClick: this.ctx.onDeployClick, traceURL: this.ctx.config.traceURL || '' });
    } else if (p.type === 'heatmap') {
      const chartEl = el('div', { class: 'chart heatmap' });
      body.append(chartEl);
      panel.heatmap = new Heatmap(chartEl, { unit: p.options?.yAxis?.unit || 'short', cellUnit: p.options?.cellValues?.unit || 'short' });
    } else if (p.type === 'text') {
      this.renderText(panel);
    } else if (p.type !== 'stat' && p.type !== 'table') {
      body.append(el('p', { class: 'muted' }, `The console does not draw ${p.type} panels; open the dashboard in Grafana.`));
      e.dataset.state = 'unsupported';
    }
    return panel;
  }

  renderText(panel) {
    const content = (panel.p.options?.content || '').replaceAll('${collector_url}', location.origin);
    panel.body.replaceChildren(el('div', { class: 'text' }, markdown(content)));
    panel.el.dataset.state = 'ok';
  }

  // load resolves the variables and draws every panel for [fromMs, toMs].
  // It resolves when every panel is drawn (or failed).
  async load(fromMs, toMs, rangeKey, signal) {
    this.range = [fromMs, toMs];
    await this.resolveVariables(fromMs, toMs, signal);
    this.renderVarBar();
    await Promise.all([...this.panels.map(panel => this.loadPanel(panel, fromMs, toMs, rangeKey, signal)), this.loadSwitches(signal)]);
    this.renderLanes();
  }

  // service is the one service the dashboard shows, or '' (none or all).
  service() {
    const v = this.vars.service;
    return v && !v.all && v.values.length === 1 ? v.values[0] : '';
  }

  // loadSwitches fetches the switches the chosen service announced; a
  // collector or token without them leaves the lanes to the change log.
  async loadSwitches(signal) {
    this.switches = [];
    const svc = this.service();
    if (!this.hasService || !svc) return;
    try {
      const env = this.vars.env && !this.vars.env.all ? this.vars.env.values[0] : '';
      this.switches = (await api.switches(svc, signal)).filter(s => !env || !s.env || s.env === env);
    } catch (e) {
      if (e.name === 'AbortError') throw e;
    }
  }

  // renderLanes draws one lane per switch of the service (announced, or
  // seen in the change log's switch changes): a band while it was away
  // from its default (open to now while it still is), a tick per flip, and
  // a flip button for announced switches.
  renderLanes() {
    const svc = this.service();
    if (!this.hasService || !svc) {
      this.lanes.hidden = true;
      return;
    }
    const flips = this.deploys.filter(c => c.kind === 'switch' && c.service === svc && c.subject);
    const names = [...new Set([...this.switches.map(s => s.name), ...flips.map(c => c.subject)])].sort();
    this.lanes.hidden = names.length === 0;
    if (!names.length) return;
    const [from, to] = this.range;
    const pct = ms => `${Math.min(100, Math.max(0, (ms - from) / (to - from) * 100))}%`;
    const rows = names.map(name => {
      const sw = this.switches.find(s => s.name === name);
      const track = el('div', { class: 'lane-track' });
      for (const c of flips.filter(c => c.subject === name)) {
        const t = Date.parse(c.time);
        const open = !c.end_time && c.status === 'running';
        const end = c.end_time ? Date.parse(c.end_time) : open ? to : t;
        if (end < from || t > to) continue;
        const text = `${changeTitle(c)}\n${isoTime(t)} (${relTime(t)})${c.end_time ? ', until ' + isoTime(end) : open ? ', still on' : ''}${c.message ? '\n' + c.message : ''}`;
        if (end > t) {
          const band = el('div', { class: 'lane-band kind-switch' + (open ? ' open' : ''),
            dataset: { time: String(t), deployId: c.id, ...(c.end_time ? { end: String(end) } : { open: 'true' }) } },
          c.fields && c.fields.state ? c.fields.state : '');
          band.style.left = pct(Math.max(t, from));
          band.style.width = `calc(${pct(end)} - ${pct(Math.max(t, from))})`;
          band.addEventListener('mousemove', e => showTooltip(text, e.clientX, e.clientY));
          band.addEventListener('mouseleave', hideTooltip);
          track.append(band);
        }
        if (t >= from) {
          const tick = el('div', { class: 'lane-tick', dataset: { time: String(t), deployId: c.id } });
          tick.style.left = pct(t);
          tick.addEventListener('mousemove', e => showTooltip(text, e.clientX, e.clientY));
          tick.addEventListener('mouseleave', hideTooltip);
          tick.addEventListener('click', () => this.ctx.onDeployClick && this.ctx.onDeployClick(c));
          track.append(tick);
        }
      }
      const state = sw ? (sw.mixed ? 'mixed' : sw.on ? 'on' : 'off') : '';
      const button = sw ? el('button', { type: 'button', class: 'flip', dataset: { switch: name },
        title: `flip ${name} on every instance of ${svc}; you will be asked why` }, sw.on ? 'turn off' : 'turn on') : null;
      if (button) button.addEventListener('click', () => this.flip(svc, sw));
      return el('div', { class: 'lane', dataset: { switch: name, state } },
        el('div', { class: 'lane-label', title: sw ? [sw.description, sw.protects && 'protects: ' + sw.protects, sw.owner && 'owner: ' + sw.owner].filter(Boolean).join('\n') : '' },
          el('span', { class: 'lane-name' }, name),
          state ? el('span', { class: `pill state-${state}` }, state) : null,
          sw && sw.on !== sw.default ? el('span', { class: 'muted small' }, ` default ${sw.default ? 'on' : 'off'}`) : null),
        track, el('div', { class: 'lane-actions' }, button));
    });
    this.lanes.replaceChildren(el('h2', {}, 'Switches of ' + svc), ...rows);
  }

  // flip asks why and who, then has the collector flip the switch.
  async flip(service, sw) {
    const on = !sw.on;
    const reason = window.prompt(`Turn ${sw.name} ${on ? 'on' : 'off'} on every instance of ${service}. Why?`);
    if (!reason || !reason.trim()) return;
    let who = '';
    try { who = localStorage.getItem('telltale.who') || ''; } catch { /* private mode */ }
    who = window.prompt('Who is flipping it? (recorded with the flip)', who) || '';
    if (!who.trim()) return;
    try { localStorage.setItem('telltale.who', who.trim()); } catch { /* private mode */ }
    try {
      const env = this.vars.env && !this.vars.env.all ? this.vars.env.values[0] : '';
      const res = await api.flipSwitch(service, sw.name, { on, reason: reason.trim(), who: who.trim(), env });
      this.ctx.state.lastFlip = res;
    } catch (e) {
      window.alert(`Cannot flip ${sw.name}: ${e.message}${e.status === 403 ? ' (flipping needs a token with the deploy scope)' : ''}`);
    }
    if (this.ctx.refresh) this.ctx.refresh();
  }

  async resolveVariables(fromMs, toMs, signal) {
    const scope = { ...V.builtins(fromMs, toMs, V.MIN_INTERVAL_MS) };
    const vars = {};
    for (const v of this.varDefs) {
      const name = v.name;
      const sel = this.ctx.urlVars.get(name);
      if (v.type === 'datasource') continue;
      if (v.type === 'textbox' || v.type === 'constant') {
        const val = name === 'collector_url' ? location.origin : (sel?.[0] ?? v.current?.value ?? v.query ?? '');
        vars[name] = { values: [String(val)], options: [String(val)], def: v };
        scope[name] = vars[name];
        continue;
      }
      let options = [];
      let error = null;
      if (v.type === 'custom') {
        options = String(v.query || '').split(',').map(s => s.trim()).filter(Boolean);
      } else if (v.type === 'query') {
        try {
          const q = V.parseVariableQuery(v.query);
          const selector = V.interpolate(q.selector, scope);
          options = await api.labelValues(q.label, selector, fromMs, toMs, signal);
        } catch (e) {
          if (e.name === 'AbortError') throw e;
          error = e.message;
        }
        if (v.sort === 1 || v.sort === 3 || v.sort === 5) options = [...options].sort();
        else if (v.sort === 2 || v.sort === 4 || v.sort === 6) options = [...options].sort().reverse();
      } else {
        continue;
      }
      const multi = !!v.multi, includeAll = !!v.includeAll;
      let values, all = false;
      const cur = v.current?.value;
      const curValues = cur === undefined || cur === null ? [] : Array.isArray(cur) ? cur : [cur];
      // As Grafana: a selection (from the URL) that is not among the
      // options falls back to the default, so a chained variable (env
      // after service) follows its parent.
      const selOK = sel && sel.length && (!options.length || sel.every(x => options.includes(x) || (x === '$__all' && includeAll)));
      if (selOK) {
        if (sel.includes('$__all') && includeAll) all = true;
        values = sel.filter(x => x !== '$__all');
      } else if (curValues.includes('$__all') && includeAll) {
        all = true;
      } else if (curValues.length && curValues.every(x => options.includes(x))) {
        values = curValues;
      } else if (includeAll && multi) {
        all = true;
      } else {
        values = options.length ? [options[0]] : [];
      }
      if (all) values = options.slice();
      vars[name] = { values: values || [], options, all, allValue: v.allValue || null, multi, includeAll, error, def: v };
      scope[name] = vars[name];
    }
    this.vars = vars;
  }

  renderVarBar() {
    const items = [];
    for (const [name, v] of Object.entries(this.vars)) {
      const def = v.def;
      if (def.type === 'textbox' || def.type === 'constant' || def.hide === 2) continue;
      const sel = el('select', { 'data-var': name, title: v.error || def.definition || '' });
      if (v.includeAll) sel.append(el('option', { value: '$__all' }, 'All'));
      const opts = new Set(v.options);
      for (const o of v.values) if (!opts.has(o)) opts.add(o);
      for (const o of opts) sel.append(el('option', { value: o }, o));
      if (!opts.size && !v.includeAll) sel.append(el('option', { value: '' }, 'none'));
      sel.value = v.all ? '$__all' : (v.values[0] ?? '');
      sel.addEventListener('change', () => this.ctx.setUrlVar(name, [sel.value]));
      items.push(el('label', { class: v.error ? 'var var-error' : 'var' }, def.label || name, sel));
      if (v.error) items.push(el('span', { class: 'error small' }, v.error));
      else if (!v.options.length && def.type === 'query') {
        items.push(el('span', { class: 'muted small', dataset: { emptyVar: name } },
          `no ${name} in this range: nothing matches ${def.definition || def.query}`));
      }
    }
    this.varBar.replaceChildren(...items);
  }

  // deployMatches keeps the changes that match the dashboard's service and
  // env variables, as its Grafana deploy annotations do; a change without
  // env marks every env.
  deployMatches(d) {
    for (const k of ['service', 'env']) {
      const v = this.vars[k];
      if (!v || v.all) continue;
      if (k === 'env' && !d.env) continue;
      if (v.values.length && !v.values.includes(d[k])) return false;
    }
    return true;
  }

  setDeploys(list) {
    this.deploys = list.filter(d => this.deployMatches(d));
    for (const p of this.panels) if (p.chart) p.chart.setDeploys(this.deploys);
    this.renderLanes();
  }

  // setAlerts draws the firing regions on every chart: those of the
  // dashboard's service and env, and those of alerts without one (as the
  // Grafana dashboards' firing-alerts annotation does).
  setAlerts(regions) {
    this.alerts = regions.filter(r => this.deployMatches({ service: r.labels.service, env: r.labels.env }) || (!r.labels.service && !r.labels.env));
    for (const p of this.panels) if (p.chart) p.chart.setAlerts(this.alerts);
  }

  scopeFor(fromMs, toMs, intervalMs) {
    return { ...this.vars, ...V.builtins(fromMs, toMs, intervalMs) };
  }

  exploreLink(panel, exprs, rangeKey) {
    const cfg = this.ctx.config;
    if (!cfg.grafanaURL || !exprs.length) return null;
    const uid = cfg.grafanaDatasourceUID || 'telltale';
    const panes = {
      a: {
        datasource: uid,
        queries: exprs.map((expr, i) => ({ refId: String.fromCharCode(65 + i), expr, range: true, datasource: { type: 'prometheus', uid } })),
        range: { from: `now-${rangeKey}`, to: 'now' },
      },
    };
    return `${cfg.grafanaURL}/explore?schemaVersion=1&orgId=1&panes=${encodeURIComponent(JSON.stringify(panes))}`;
  }

  async loadPanel(panel, fromMs, toMs, rangeKey, signal) {
    if (panel.kind === 'row' || panel.kind === 'text' || panel.el.dataset.state === 'unsupported') return;
    const p = panel.p;
    const t0 = performance.now();
    const width = panel.body.clientWidth || 600;
    const minMs = Math.max(V.MIN_INTERVAL_MS, parseDuration(p.interval));
    const intervalMs = p.type === 'timeseries' || p.type === 'heatmap' ? V.intervalFor(toMs - fromMs, width, minMs) : minMs;
    const scope = this.scopeFor(fromMs, toMs, intervalMs);
    const targets = targetsOf(p).map(t => ({ t, expr: V.interpolate(t.expr, scope) }));
    const link = this.exploreLink(panel, targets.map(x => x.expr), rangeKey);
    const href = link && safeURL(link);
    panel.links.replaceChildren(href ? el('a', { href, target: '_blank', rel: 'noopener noreferrer', class: 'explore', title: 'Open this query in Grafana Explore' }, 'Grafana ↗') : '');
    panel.el.dataset.exprs = JSON.stringify(targets.map(x => x.expr));
    const info = { title: p.title, type: p.type, state: 'loading' };
    try {
      if (p.type === 'timeseries') Object.assign(info, await this.loadTimeseries(panel, targets, fromMs, toMs, intervalMs, signal));
      else if (p.type === 'heatmap') Object.assign(info, await this.loadHeatmap(panel, targets, fromMs, toMs, intervalMs, signal));
      else if (p.type === 'stat') Object.assign(info, await this.loadStat(panel, targets, toMs, signal));
      else if (p.type === 'table') Object.assign(info, await this.loadTable(panel, targets, toMs, signal));
      info.state = info.series > 0 ? 'ok' : 'nodata';
    } catch (e) {
      if (e.name === 'AbortError') return;
      info.state = 'error';
      info.error = e.message;
      this.showError(panel, e);
    }
    info.loadMs = Math.round(performance.now() - t0);
    panel.el.dataset.state = info.state;
    panel.el.dataset.series = String(info.series ?? 0);
    panel.el.classList.toggle('nodata', info.state === 'nodata');
    this.ctx.state.panels[`${this.dash.uid}/${p.id}`] = info;
  }

  showError(panel, e) {
    const msg = e instanceof api.AuthError ? `Needs a read token: ${e.message}` : e.message;
    let box = panel.body.querySelector('.panel-error');
    if (!box) {
      box = el('div', { class: 'panel-error' });
      panel.body.append(box);
    }
    box.textContent = msg;
  }

  clearError(panel) {
    const box = panel.body.querySelector('.panel-error');
    if (box) box.remove();
  }

  async loadTimeseries(panel, targets, fromMs, toMs, intervalMs, signal) {
    const stepS = intervalMs / 1000;
    // Points end at toMs (now), not at a step boundary, so the newest
    // sample shows at once; Grafana aligns to the step and lags up to one.
    const n = Math.ceil((toMs - fromMs) / intervalMs) + 1;
    const start = toMs - (n - 1) * intervalMs;
    const results = await Promise.all(targets.map(x => api.queryRange(x.expr, start, toMs, stepS, signal)));
    // Exemplars only with a trace URL template to link them to; a failure
    // to fetch them costs the points, not the chart.
    const exemplars = this.ctx.config.traceURL
      ? (await Promise.all(targets.map(x => api.queryExemplars(x.expr, start, toMs, signal).catch(e => {
        if (e.name === 'AbortError') throw e;
        return [];
      })))).flat().flatMap(s => (s.exemplars || []).map(e => ({ t: Number(e.timestamp), value: Number(e.value), labels: e.labels || {}, series: s.seriesLabels || {} })))
      : [];
    const xs = new Array(n);
    for (let i = 0; i < n; i++) xs[i] = (start + i * intervalMs) / 1000;
    const series = [];
    results.forEach((res, ti) => {
      const { t, expr } = targets[ti];
      for (const s of res.result || []) {
        const values = new Array(n).fill(null);
        for (const [ts, v] of s.values || []) {
          const i = Math.round((ts * 1000 - start) / intervalMs);
          if (i >= 0 && i < n) values[i] = Number(v);
        }
        series.push({ label: V.legend(t.legendFormat, s.metric, expr), values });
      }
    });
    this.clearError(panel);
    const t0 = performance.now();
    panel.chart.setData(xs, series, fromMs, toMs);
    panel.chart.setDeploys(this.deploys);
    panel.chart.setAlerts(this.alerts || []);
    panel.chart.setExemplars(exemplars);
    await new Promise(r => queueMicrotask(r)); // after uPlot's queued draw
    const drawMs = performance.now() - t0;
    let points = 0;
    for (const s of series) for (const v of s.values) if (v !== null) points++;
    return { series: series.length, points, drawMs: Math.round(drawMs * 10) / 10 };
  }

  // loadHeatmap draws the panel's range queries (native histograms or
  // classic le series) as a heatmap; series counts the buckets drawn.
  async loadHeatmap(panel, targets, fromMs, toMs, intervalMs, signal) {
    const n = Math.ceil((toMs - fromMs) / intervalMs) + 1;
    const start = toMs - (n - 1) * intervalMs;
    const results = await Promise.all(targets.map(x => api.queryRange(x.expr, start, toMs, intervalMs / 1000, signal)));
    const data = heatmapCells(results.flatMap(r => r.result || []), start, intervalMs, n);
    this.clearError(panel);
    panel.heatmap.setData(data, start, intervalMs, fromMs, toMs);
    return { series: data.cells.length ? data.buckets.length : 0, points: data.cells.length };
  }

  async loadStat(panel, targets, atMs, signal) {
    const results = await Promise.all(targets.map(x => api.queryInstant(x.expr, atMs, signal)));
    const unit = unitOf(panel.p);
    const mode = panel.p.options?.textMode || 'auto';
    const items = [];
    results.forEach((res, ti) => {
      const { t, expr } = targets[ti];
      const vec = res.resultType === 'scalar' ? [{ metric: {}, value: res.result }] : (res.result || []);
      for (const s of vec) items.push({ name: V.legend(t.legendFormat, s.metric, expr), value: Number(s.value[1]) });
    });
    const showName = mode === 'name' || mode === 'value_and_name' || (mode === 'auto' && items.length > 1);
    const nodes = items.map((it, i) => el('div', { class: 'stat', dataset: { value: String(it.value) } },
      mode === 'name' ? null : el('div', { class: `stat-value c${i % PALETTE.length}` }, format(it.value, unit)),
      showName ? el('div', { class: mode === 'name' ? 'stat-value stat-name-only' : 'stat-name' }, it.name) : null));
    this.clearError(panel);
    panel.body.replaceChildren(nodes.length ? el('div', { class: `stats n${Math.min(nodes.length, 4)}` }, nodes)
      : el('div', { class: 'nodata-text' }, panel.p.fieldConfig?.defaults?.noValue || 'No data'));
    return { series: items.length };
  }

  async loadTable(panel, targets, atMs, signal) {
    const results = await Promise.all(targets.map(x => api.queryInstant(x.expr, atMs, signal)));
    const unit = unitOf(panel.p);
    const rows = [];
    for (const res of results) for (const s of res.result || []) rows.push({ ...s.metric, Time: s.value[0], Value: s.value[1] });
    // Grafana's "organize" transformation: exclude, rename, order.
    const org = (panel.p.transformations || []).find(t => t.id === 'organize')?.options || {};
    const exclude = org.excludeByName || {}, rename = org.renameByName || {}, order = org.indexByName || {};
    const cols = [...new Set(rows.flatMap(r => Object.keys(r)))].filter(c => !exclude[c] && c !== 'Time' && c !== '__name__');
    cols.sort((a, b) => (order[a] ?? 100) - (order[b] ?? 100) || a.localeCompare(b));
    this.clearError(panel);
    if (!rows.length) {
      panel.body.replaceChildren(el('div', { class: 'nodata-text' }, panel.p.fieldConfig?.defaults?.noValue || 'No data'));
      return { series: 0 };
    }
    rows.sort((a, b) => Number(b.Value) - Number(a.Value));
    const table = el('table', { class: 'data-table' },
      el('thead', {}, el('tr', {}, cols.map(c => el('th', {}, rename[c] || c)))),
      el('tbody', {}, rows.map(r => el('tr', {}, cols.map(c => el('td', {}, c === 'Value' ? format(Number(r.Value), unit) : (r[c] ?? '')))))));
    panel.body.replaceChildren(el('div', { class: 'table-wrap' }, table));
    return { series: rows.length };
  }

  // redraw repaints every chart without fetching; returns ms.
  redraw() {
    const t0 = performance.now();
    for (const p of this.panels) if (p.chart) p.chart.redraw();
    for (const p of this.panels) if (p.heatmap) p.heatmap.redraw();
    return performance.now() - t0;
  }

  destroy() {
    for (const p of this.panels) if (p.chart) p.chart.destroy();
    for (const p of this.panels) if (p.heatmap) p.heatmap.destroy();
    this.root.replaceChildren();
  }
}

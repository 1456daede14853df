// app.js: the console's entry point. Routes (in the URL fragment, so every
// view is a link):
//   #/d/<uid>?range=1h&refresh=30s&var-<name>=<value>&service=&env=&q=
//   #/live?match=<selector>
// The change log is on top of every page; the time range and refresh apply
// to it and to the dashboard. window.__telltale holds what was drawn and how
// long it took, for people and tests.

import * as api from './api.js';
import { DashboardView } from './dashboard.js';
import { ChangeLog } from './changes.js';
import { LiveView } from './live.js';
import { el } from './format.js';
import { hideTooltip } from './chart.js';

const RANGES = { '15m': 15 * 60e3, '30m': 30 * 60e3, '1h': 3600e3, '6h': 6 * 3600e3, '24h': 24 * 3600e3 };
const REFRESHES = { off: 0, '10s': 10e3, '30s': 30e3, '1m': 60e3 };
const DEFAULT_RANGE = '30m'; // as the dashboards' own default (board.DefaultFrom): a fresh install's data is more than a sliver
const DEFAULT_REFRESH = '30s'; // the dashboards' own refresh

const config = JSON.parse(document.getElementById('telltale-config').textContent);

const state = window.__telltale = {
  config,
  ready: false, // true after the first complete load of a view
  busy: false, // a load is running
  loads: 0, // complete loads so far
  loadMs: null, // time of the last complete load (deploy log + every panel)
  panels: {},
  deploys: 0, // changes marked on the graphs (every kind shown)
  csp: [], // Content-Security-Policy violations, which should never happen
  errors: [],
};
document.addEventListener('securitypolicyviolation', e => state.csp.push(`${e.violatedDirective} ${e.blockedURI}`));
window.addEventListener('error', e => state.errors.push(String(e.message)));
window.addEventListener('unhandledrejection', e => state.errors.push(String(e.reason && e.reason.message || e.reason)));

let dashboards = null; // uid -> dashboard model, loaded once
let view = null; // DashboardView or LiveView
let route = null; // {page, uid, params}
let timer = 0;
let inflight = null;

function parseRoute() {
  const h = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = h.split('?');
  const params = new URLSearchParams(query);
  const parts = path.split('/').filter(Boolean);
  if (parts[0] === 'live') return { page: 'live', params };
  const uid = parts[0] === 'd' && parts[1] ? decodeURIComponent(parts[1]) : config.dashboards[0]?.uid;
  return { page: 'dashboard', uid, params };
}

function routeHash(r) {
  const q = r.params.toString();
  const path = r.page === 'live' ? '/live' : `/d/${encodeURIComponent(r.uid)}`;
  return '#' + path + (q ? '?' + q : '');
}

// setParams changes URL parameters without a reload of the view.
function setParams(changes) {
  for (const [k, v] of Object.entries(changes)) {
    route.params.delete(k);
    if (Array.isArray(v)) for (const x of v) route.params.append(k, x);
    else if (v !== null && v !== undefined && v !== '') route.params.set(k, v);
  }
  history.replaceState(null, '', routeHash(route));
}

function rangeKey() {
  const r = route.params.get('range');
  return RANGES[r] ? r : DEFAULT_RANGE;
}

function refreshKey() {
  const r = route.params.get('refresh');
  return REFRESHES[r] !== undefined ? r : DEFAULT_REFRESH;
}

function timeRange() {
  const to = Date.now();
  return [to - RANGES[rangeKey()], to];
}

// --- auth ---------------------------------------------------------------

const authBox = document.getElementById('auth');

function showAuth(message) {
  authBox.hidden = false;
  const has = !!api.getToken();
  document.getElementById('auth-title').textContent = has ? 'The saved token was refused.' : 'This collector needs a token.';
  document.getElementById('auth-message').textContent = message || '';
  document.getElementById('auth-token').focus();
}

api.onAuthError(e => showAuth(`${e.status === 403 ? '403 Forbidden' : '401 Unauthorized'}: ${e.message}`));
document.getElementById('auth-form').addEventListener('submit', e => {
  e.preventDefault();
  const input = document.getElementById('auth-token');
  api.setToken(input.value.trim());
  input.value = '';
  authBox.hidden = true;
  render(true);
});
document.getElementById('auth-forget').addEventListener('click', () => {
  api.setToken('');
  document.getElementById('auth-title').textContent = 'Token forgotten.';
});
document.getElementById('auth-close').addEventListener('click', () => { authBox.hidden = true; });
document.getElementById('token-button').addEventListener('click', () => showAuth(
  api.getToken() ? 'A token is saved in this browser; paste another to replace it.' : 'Paste a token with the read scope.'));

// --- change log ---------------------------------------------------------

const startParams = parseRoute().params;
const deployLog = new ChangeLog({
  filter: { service: startParams.get('service') || '', env: startParams.get('env') || '', q: startParams.get('q') || '' },
  onFilter: f => {
    setParams({ service: f.service, env: f.env, q: f.q });
    refresh();
  },
  onKinds: () => {
    state.deploys = deployLog.visible().length;
    if (view && view.setDeploys) view.setDeploys(deployLog.visible());
  },
});

function onDeployClick(d) {
  deployLog.highlight(d.id);
}

// --- views --------------------------------------------------------------

function renderTabs() {
  const tabs = config.dashboards.map(d => el('a', {
    href: `#/d/${encodeURIComponent(d.uid)}${carry()}`,
    class: route.page === 'dashboard' && route.uid === d.uid ? 'tab active' : 'tab',
    dataset: { uid: d.uid },
  }, d.title));
  tabs.push(el('a', { href: `#/live${carry()}`, class: route.page === 'live' ? 'tab active' : 'tab', id: 'tab-live' }, 'Live'));
  document.getElementById('tabs').replaceChildren(...tabs);
}

// carry keeps range, refresh and the deploy filter across tabs.
function carry() {
  const p = new URLSearchParams();
  for (const k of ['range', 'refresh', 'service', 'env', 'q']) if (route.params.get(k)) p.set(k, route.params.get(k));
  const q = p.toString();
  return q ? '?' + q : '';
}

async function loadDashboards() {
  if (dashboards) return dashboards;
  const resp = await fetch('/static/dashboards.json', { cache: 'no-cache' });
  if (!resp.ok) throw new Error(`cannot load the dashboards: HTTP ${resp.status}`);
  dashboards = new Map((await resp.json()).map(d => [d.uid, d.dashboard]));
  return dashboards;
}

// urlVarsOf reads the var-<name> parameters: name -> [values].
function urlVarsOf(params) {
  const vars = new Map();
  for (const [k, v] of params) if (k.startsWith('var-')) vars.set(k.slice(4), [...(vars.get(k.slice(4)) || []), v]);
  return vars;
}

async function render(force) {
  const next = parseRoute();
  const same = route && view && next.page === route.page && next.uid === route.uid;
  route = next;
  document.getElementById('range').value = rangeKey();
  document.getElementById('refresh').value = refreshKey();
  renderTabs();
  if (same && !force) {
    if (view.ctx) view.ctx.urlVars = urlVarsOf(route.params); // the URL's var-<name> may have changed
    refresh();
    return;
  }
  if (view) view.destroy();
  view = null;
  hideTooltip();
  state.ready = false;
  state.panels = {};
  const root = document.getElementById('view');
  if (route.page === 'live') {
    view = new LiveView(root, {
      match: route.params.get('match'),
      state,
      onMatch: m => setParams({ match: m }),
      onDeploy: d => {
        const f = deployLog.filter;
        if ((!f.service || f.service === d.service) && (!f.env || !d.env || f.env === d.env)) deployLog.prepend(d);
      },
    });
    view.start();
  } else {
    let boards;
    try {
      boards = await loadDashboards();
    } catch (e) {
      root.replaceChildren(el('p', { class: 'error' }, e.message));
      return;
    }
    const dash = boards.get(route.uid);
    if (!dash) {
      root.replaceChildren(el('p', { class: 'error' }, `No dashboard with uid ${route.uid}. Pick one above.`));
      return;
    }
    document.title = `${dash.title} · Telltale`;
    view = new DashboardView(root, dash, {
      config, state, onDeployClick, urlVars: urlVarsOf(route.params), refresh: () => refresh(),
      setUrlVar: (name, values) => {
        setParams({ ['var-' + name]: values });
        view.ctx.urlVars.set(name, values);
        refresh();
      },
    });
  }
  refresh();
}

// refresh reloads the deploy log and the view for the current time range.
async function refresh() {
  scheduleRefresh();
  if (inflight) inflight.abort();
  const ctl = new AbortController();
  inflight = ctl;
  const t0 = performance.now();
  state.busy = true;
  const [from, to] = timeRange();
  const current = view;
  try {
    const deploysP = deployLog.load(from, to, ctl.signal).then(() => {
      state.deploys = deployLog.visible().length;
      state.changes = deployLog.list.length;
      if (current && current.setDeploys) current.setDeploys(deployLog.visible());
    });
    const viewP = current && current.load ? current.load(from, to, rangeKey(), ctl.signal) : Promise.resolve();
    await Promise.all([deploysP, viewP]);
    if (current && current.setDeploys) current.setDeploys(deployLog.visible());
  } catch (e) {
    if (e.name === 'AbortError') return;
    state.errors.push(e.message);
  }
  if (ctl.signal.aborted || current !== view) return;
  inflight = null;
  state.busy = false;
  state.loadMs = Math.round(performance.now() - t0);
  state.loads++;
  state.ready = true;
  document.body.dataset.loads = String(state.loads);
  document.getElementById('footer').textContent = footerText();
}

function scheduleRefresh() {
  clearTimeout(timer);
  const every = REFRESHES[refreshKey()];
  if (every && route.page !== 'live') timer = setTimeout(refresh, every);
}

function footerText() {
  const parts = [`Telltale collector ${config.version || ''}`.trim()];
  if (state.loadMs !== null) parts.push(`loaded in ${state.loadMs} ms`);
  parts.push(config.grafanaURL ? `Grafana: ${config.grafanaURL}` : 'no -grafana.url: panels do not link to Grafana');
  return parts.join(' · ');
}

// redrawAll repaints every chart without fetching and returns ms, for
// measuring drawing alone.
state.redrawAll = () => (view && view.redraw ? view.redraw() : 0);

document.getElementById('range').addEventListener('change', e => { setParams({ range: e.target.value }); renderTabs(); refresh(); });
document.getElementById('refresh').addEventListener('change', e => { setParams({ refresh: e.target.value }); renderTabs(); scheduleRefresh(); });
document.getElementById('reload').addEventListener('click', () => refresh());
window.addEventListener('hashchange', () => render(false));
document.addEventListener('visibilitychange', () => { if (!document.hidden && route.page !== 'live' && REFRESHES[refreshKey()]) refresh(); });

if (config.authEnabled && !api.getToken()) showAuth('Paste a token with the read scope to see the data. The page itself is public; the data is not.');
render(true);

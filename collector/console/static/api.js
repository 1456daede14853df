// api.js: the collector's HTTP APIs as the console uses them, with the read
// token from localStorage. A 401 or 403 becomes an AuthError so the page can
// ask for a token; other failures become ApiError with the server's message.

const TOKEN_KEY = 'telltale.token';

export function getToken() {
  try { return localStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

export function setToken(t) {
  try {
    if (t) localStorage.setItem(TOKEN_KEY, t); else localStorage.removeItem(TOKEN_KEY);
  } catch { /* private mode: the token lives until reload */ }
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export class AuthError extends ApiError {}

const authListeners = new Set();

// onAuthError registers f(err) to be called whenever a request is refused
// for want of a (good) token.
export function onAuthError(f) { authListeners.add(f); }

async function errorFrom(resp) {
  let text = '';
  try { text = await resp.text(); } catch { /* connection dropped */ }
  let msg = text.trim();
  try {
    const j = JSON.parse(text);
    if (j && j.error) msg = j.error;
  } catch { /* plain text answer */ }
  if (!msg) msg = `HTTP ${resp.status}`;
  if (resp.status === 401 || resp.status === 403) {
    const err = new AuthError(resp.status, msg);
    for (const f of authListeners) f(err);
    return err;
  }
  return new ApiError(resp.status, msg);
}

// request fetches path with the token and returns the decoded JSON's data
// field (Prometheus API envelope).
export async function request(path, { method = 'GET', form = null, json = null, signal } = {}) {
  const headers = { Accept: 'application/json' };
  const token = getToken();
  if (token) headers.Authorization = 'Bearer ' + token;
  const init = { method, headers, signal, cache: 'no-store' };
  if (form) {
    init.body = new URLSearchParams(form);
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
  }
  if (json) {
    init.body = JSON.stringify(json);
    headers['Content-Type'] = 'application/json';
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, `cannot reach the collector (${e.message}); is it running?`);
  }
  if (!resp.ok) throw await errorFrom(resp);
  const j = await resp.json();
  if (j.status !== 'success') throw new ApiError(resp.status, j.error || 'request failed');
  return j.data;
}

// queryRange runs a PromQL range query; times in ms, step in seconds.
export function queryRange(expr, startMs, endMs, stepS, signal) {
  return request('/api/v1/query_range', {
    method: 'POST', signal,
    form: { query: expr, start: (startMs / 1000).toFixed(3), end: (endMs / 1000).toFixed(3), step: String(stepS) },
  });
}

// queryExemplars lists the exemplars of the series expr selects between
// startMs and endMs, as Prometheus serves them: [{seriesLabels,
// exemplars: [{labels, value, timestamp}]}].
export function queryExemplars(expr, startMs, endMs, signal) {
  return request('/api/v1/query_exemplars', {
    method: 'POST', signal,
    form: { query: expr, start: (startMs / 1000).toFixed(3), end: (endMs / 1000).toFixed(3) },
  });
}

// queryInstant runs a PromQL instant query at atMs.
export function queryInstant(expr, atMs, signal) {
  return request('/api/v1/query', { method: 'POST', signal, form: { query: expr, time: (atMs / 1000).toFixed(3) } });
}

// labelValues lists the values of label on series matching selector ('' for
// all series) that have samples between startMs and endMs.
export function labelValues(label, selector, startMs, endMs, signal) {
  const p = new URLSearchParams();
  if (selector) p.append('match[]', selector);
  p.set('start', (startMs / 1000).toFixed(3));
  p.set('end', (endMs / 1000).toFixed(3));
  return request(`/api/v1/label/${encodeURIComponent(label)}/values?${p}`, { signal });
}

// changes lists changes of every kind newest first: filter {kind, service,
// env, subject, q, from, to (ms), limit}. A change without env matches any
// env, and from/to select the changes whose span overlaps them.
export function changes({ kind = '', service = '', env = '', subject = '', q = '', from = 0, to = 0, limit = 100 } = {}, signal) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries({ kind, service, env, subject, q })) if (v) p.set(k, v);
  if (from) p.set('from', (from / 1000).toFixed(3));
  if (to) p.set('to', (to / 1000).toFixed(3));
  p.set('limit', String(limit));
  return request('/api/v1/changes?' + p, { signal });
}

// switches lists the contingency switches apps announced, for service
// ('' for all).
export function switches(service, signal) {
  const p = new URLSearchParams();
  if (service) p.set('service', service);
  return request('/api/v1/switches?' + p, { signal });
}

// flipSwitch asks the collector to flip switch name of service on every
// live instance: {on, reason, who, env}. It needs a token with the deploy
// scope.
export function flipSwitch(service, name, body) {
  return request(`/api/v1/switches/${encodeURIComponent(service)}/${encodeURIComponent(name)}`, { method: 'POST', json: body });
}

// tailURL is the websocket URL of the live tail for selectors.
export function tailURL(selectors, maxRate) {
  const p = new URLSearchParams();
  for (const s of selectors) p.append('match[]', s);
  if (maxRate) p.set('max_rate', String(maxRate));
  const token = getToken();
  if (token) p.set('access_token', token);
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/api/v1/tail?${p}`;
}

// tailProblem asks the tail endpoint with plain HTTP why a websocket could
// not open: it answers 400 "not a websocket" when all else is fine, or the
// real problem (bad selector, 401/403, too many clients).
export async function tailProblem(selectors) {
  const p = new URLSearchParams();
  for (const s of selectors) p.append('match[]', s);
  const headers = {};
  const token = getToken();
  if (token) headers.Authorization = 'Bearer ' + token;
  try {
    const resp = await fetch('/api/v1/tail?' + p, { headers, cache: 'no-store' });
    const text = (await resp.text()).trim();
    if (resp.status === 400 && /websocket/.test(text) && !/match\[\]/.test(text)) return null;
    if (resp.status === 401 || resp.status === 403) {
      const err = new AuthError(resp.status, text);
      for (const f of authListeners) f(err);
    }
    return `${resp.status}: ${text}`;
  } catch (e) {
    return `cannot reach the collector (${e.message})`;
  }
}

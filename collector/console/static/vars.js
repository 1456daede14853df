// vars.js: Grafana's template language as far as the dashboards use it,
// for the Prometheus data source: $var, ${var}, ${var:format}, [[var]],
// the built-ins $__interval, $__rate_interval, $__range (and _ms, _s), the
// interval a panel's width implies, label_values() variable queries and
// {{label}} legends. Pure functions.

// Grafana's data source minimum interval: the provisioned Telltale data
// source's timeInterval (10s), also the assumed scrape interval.
export const MIN_INTERVAL_MS = 10_000;

const ROUND = [
  [15, 10], [35, 20], [75, 50], [150, 100], [350, 200], [750, 500], [1500, 1000],
  [3500, 2000], [7500, 5000], [12500, 10000], [17500, 15000], [25000, 20000], [45000, 30000],
  [90000, 60000], [210000, 120000], [450000, 300000], [1050000, 600000], [2100000, 1200000],
  [3600000, 1800000], [5400000, 3600000], [9000000, 7200000], [16200000, 10800000],
  [32400000, 21600000], [86400000, 43200000], [604800000, 86400000], [1814400000, 604800000],
];

// roundInterval rounds ms to a "nice" interval the way Grafana does.
export function roundInterval(ms) {
  for (const [below, to] of ROUND) if (ms < below) return to;
  return 2592000000;
}

// promDuration renders ms as a PromQL duration: 40s, 1m30s is fine as 90s.
export function promDuration(ms) {
  if (ms % 1000 !== 0) return `${Math.max(1, Math.round(ms))}ms`;
  const s = ms / 1000;
  if (s % 86400 === 0) return `${s / 86400}d`;
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}

// intervalFor is Grafana's $__interval for a range of rangeMs drawn on
// widthPx pixels (max data points = width), at least minMs.
export function intervalFor(rangeMs, widthPx, minMs = MIN_INTERVAL_MS) {
  const points = Math.max(50, Math.min(Math.floor(widthPx || 1000), 11000));
  return Math.max(minMs, roundInterval(rangeMs / points));
}

// builtins are the $__ variables of a query over [fromMs, toMs] with
// interval intervalMs.
export function builtins(fromMs, toMs, intervalMs, scrapeMs = MIN_INTERVAL_MS) {
  const range = Math.max(1000, toMs - fromMs);
  const rate = Math.max(intervalMs + scrapeMs, 4 * scrapeMs);
  return {
    __interval: promDuration(intervalMs),
    __interval_ms: String(intervalMs),
    __rate_interval: promDuration(rate),
    __rate_interval_ms: String(rate),
    __range: promDuration(Math.round(range / 1000) * 1000),
    __range_s: String(Math.round(range / 1000)),
    __range_ms: String(range),
  };
}

// Grafana's escapes for the Prometheus data source.
export function regularEscape(v) {
  return v.replace(/\\/g, '\\\\').replace(/'/g, "\\\\'");
}

export function regexEscape(v) {
  return v.replace(/\\/g, '\\\\\\\\').replace(/[$^*{}[\]'+?.()|]/g, '\\\\$&');
}

// formatVariable renders a variable's selection for a PromQL query.
//   v = {values: [...], all: bool, allValue: '.*'|null, options: [...], multi, includeAll}
export function formatVariable(v, fmt) {
  let values = v.values || [];
  if (v.all) {
    if (v.allValue && !fmt) return v.allValue;
    values = v.options || [];
  }
  if (fmt === 'raw') return values.join(',');
  if (fmt === 'csv') return values.join(',');
  if (fmt === 'pipe') return values.join('|');
  if (fmt === 'regex') {
    const esc = values.map(s => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    return esc.length === 1 ? esc[0] : `(${esc.join('|')})`;
  }
  if (!v.multi && !v.includeAll) return regularEscape(values[0] ?? '');
  const esc = values.map(regexEscape);
  if (esc.length === 1) return esc[0];
  if (esc.length === 0) return '';
  return `(${esc.join('|')})`;
}

const VAR_RE = /\$(\w+)|\$\{(\w+)(?::([^}]+))?\}|\[\[(\w+)(?::([^\]]+))?\]\]/g;

// interpolate replaces variables in text: vars maps names to variable
// selections (see formatVariable) or, for built-ins, to plain strings.
// Unknown variables are left as they are.
export function interpolate(text, vars) {
  if (!text) return text;
  return text.replace(VAR_RE, (m, a, b, bfmt, c, cfmt) => {
    const name = a || b || c;
    const fmt = bfmt || cfmt;
    const v = vars[name];
    if (v === undefined) return m;
    if (typeof v === 'string') return v;
    return formatVariable(v, fmt);
  });
}

// parseVariableQuery understands the variable queries of the Prometheus
// data source that the console can answer:
//   label_values(label)            -> {kind: 'label_values', label, selector: ''}
//   label_values(selector, label)  -> {kind: 'label_values', label, selector}
// and throws for anything else.
export function parseVariableQuery(q) {
  if (q && typeof q === 'object') q = q.query;
  const s = String(q || '').trim();
  const m = /^label_values\s*\(([\s\S]*)\)$/.exec(s);
  if (!m) throw new Error(`variable query ${JSON.stringify(s)} is not supported by the console: use label_values(selector, label)`);
  const inner = m[1];
  let depth = 0, quote = '', cut = -1;
  for (let i = 0; i < inner.length; i++) {
    const ch = inner[i];
    if (quote) {
      if (ch === '\\') i++;
      else if (ch === quote) quote = '';
      continue;
    }
    if (ch === '"' || ch === "'" || ch === '`') quote = ch;
    else if (ch === '{' || ch === '(' || ch === '[') depth++;
    else if (ch === '}' || ch === ')' || ch === ']') depth--;
    else if (ch === ',' && depth === 0) cut = i;
  }
  const label = (cut < 0 ? inner : inner.slice(cut + 1)).trim();
  const selector = cut < 0 ? '' : inner.slice(0, cut).trim();
  if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(label)) {
    throw new Error(`variable query ${JSON.stringify(s)}: ${JSON.stringify(label)} is not a label name`);
  }
  return { kind: 'label_values', label, selector };
}

// seriesName is Prometheus' name for a series: name{a="b",...}.
export function seriesName(metric) {
  const name = metric.__name__ || '';
  const parts = Object.keys(metric).filter(k => k !== '__name__').sort()
    .map(k => `${k}=${JSON.stringify(metric[k])}`);
  if (parts.length === 0) return name;
  return `${name}{${parts.join(', ')}}`;
}

// legend renders a target's legendFormat for a series: {{label}} becomes
// the label's value; empty or "__auto" means the series name (the
// expression when the series has no labels).
export function legend(format, metric, expr) {
  if (!format || format === '__auto') return seriesName(metric) || expr;
  const out = format.replace(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g, (_, l) => metric[l] ?? '');
  return out.trim() || seriesName(metric) || expr;
}

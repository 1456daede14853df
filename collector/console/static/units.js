// units.js: value formatting for the Grafana unit ids the dashboards use
// (short, none, percentunit, percent, s, ms, bytes, Bps, reqps, ops,
// dateTimeAsIso, ...). Pure functions.

const SI = ['', 'K', 'M', 'G', 'T', 'P', 'E'];
const IEC = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];

// trim formats v with at most `digits` significant decimals, no trailing zeros.
function trim(v, decimals) {
  let d = decimals;
  if (d === undefined) {
    const a = Math.abs(v);
    d = a === 0 ? 0 : a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  }
  const s = v.toFixed(d);
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

function scaled(v, base, names, suffix, decimals) {
  let i = 0;
  let a = Math.abs(v);
  while (a >= base && i < names.length - 1) { a /= base; v /= base; i++; }
  const name = (names[i] || '') + suffix;
  if (Math.abs(v) > 0 && Math.abs(v) < 0.001 && names === SI) return v.toExponential(1) + (suffix ? ' ' + suffix : '');
  return trim(v, decimals) + (name ? ' ' + name : '');
}

function short(v, decimals) { return scaled(v, 1000, SI, '', decimals); }

function duration(sec) {
  const a = Math.abs(sec);
  if (a === 0) return '0 s';
  if (a < 1e-6) return trim(sec * 1e9) + ' ns';
  if (a < 1e-3) return trim(sec * 1e6) + ' µs';
  if (a < 1) return trim(sec * 1e3) + ' ms';
  if (a < 60) return trim(sec) + ' s';
  if (a < 3600) return trim(sec / 60) + ' min';
  if (a < 86400) return trim(sec / 3600) + ' hour';
  if (a < 86400 * 365) return trim(sec / 86400) + ' day';
  return trim(sec / (86400 * 365)) + ' year';
}

export function isoTime(ms) {
  const d = new Date(ms);
  if (isNaN(d)) return String(ms);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// format renders value v (a number) in unit. NaN and ±Inf print as such;
// null as "-".
export function format(v, unit = 'short', decimals) {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'string') v = Number(v);
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  switch (unit) {
    case 'none': case '': return trim(v, decimals);
    case 'percentunit': return trim(v * 100, decimals ?? (Math.abs(v) >= 0.1 ? 1 : 2)) + '%';
    case 'percent': return trim(v, decimals ?? 1) + '%';
    case 's': return duration(v);
    case 'ms': return duration(v / 1000);
    case 'µs': return duration(v / 1e6);
    case 'ns': return duration(v / 1e9);
    case 'bytes': return scaled(v, 1024, IEC, 'B', decimals);
    case 'decbytes': return scaled(v, 1000, SI, 'B', decimals);
    case 'bits': return scaled(v, 1000, SI, 'b', decimals);
    case 'Bps': case 'binBps': return scaled(v, 1024, IEC, 'B/s', decimals);
    case 'bps': return scaled(v, 1000, SI, 'b/s', decimals);
    case 'reqps': return short(v, decimals) + ' req/s';
    case 'ops': return short(v, decimals) + ' ops/s';
    case 'rps': return short(v, decimals) + ' rd/s';
    case 'wps': return short(v, decimals) + ' wr/s';
    case 'dateTimeAsIso': case 'dateTimeAsSystem': case 'dateTimeAsLocal': return isoTime(v);
    case 'dtdurations': return duration(v);
    default: return short(v, decimals);
  }
}

// axisFormatter returns a uPlot axis values function for unit.
export function axisFormatter(unit) {
  return (u, splits) => splits.map(v => (v === null ? '' : format(v, unit)));
}

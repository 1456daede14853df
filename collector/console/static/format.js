// format.js: small text helpers: DOM building, relative times, a minimal
// safe Markdown for text panels. Pure functions except el().

// el builds an element: el('a', {href: x, class: 'y'}, 'text', child, ...).
// Attributes with null/undefined/false values are skipped; children may be
// strings, nodes or arrays of them. Never sets innerHTML.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  append(e, children);
  return e;
}

function append(e, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(e, c);
    else e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// relTime says how long ago ms was relative to nowMs: "just now", "5m ago",
// "3h ago", "2d ago" (or "in 5m" for the future).
export function relTime(ms, nowMs = Date.now()) {
  let d = Math.round((nowMs - ms) / 1000);
  const future = d < 0;
  d = Math.abs(d);
  let s;
  if (d < 10) return 'just now';
  if (d < 60) s = `${d}s`;
  else if (d < 3600) s = `${Math.floor(d / 60)}m`;
  else if (d < 86400) s = `${Math.floor(d / 3600)}h`;
  else s = `${Math.floor(d / 86400)}d`;
  return future ? `in ${s}` : `${s} ago`;
}

// safeURL returns u when it is an http(s) URL, else null: links from the
// change log and dashboards never run script, and an empty link is no
// link (it would resolve to the console itself).
export function safeURL(u, base = location.href) {
  if (typeof u !== 'string' || !u.trim()) return null;
  try {
    const p = new URL(u, base);
    return p.protocol === 'http:' || p.protocol === 'https:' ? p.href : null;
  } catch {
    return null;
  }
}

// markdown renders the subset of Markdown the dashboards' text panels use
// (paragraphs, line breaks, **bold**, *italic*, `code`, [text](url)) as DOM
// nodes: no HTML from the source is ever interpreted.
export function markdown(src) {
  const frag = document.createDocumentFragment();
  for (const para of String(src || '').split(/\n\s*\n/)) {
    if (!para.trim()) continue;
    const p = document.createElement('p');
    const lines = para.split('\n');
    lines.forEach((line, i) => {
      if (i > 0) p.append(document.createElement('br'));
      inline(p, line.replace(/^\s*[-*]\s+/, '• '));
    });
    frag.append(p);
  }
  return frag;
}

const INLINE = /\*\*([^*]+)\*\*|\*([^*]+)\*|`([^`]+)`|\[([^\]]+)\]\(([^)\s]+)\)/g;

function inline(parent, text) {
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    parent.append(text.slice(last, m.index));
    if (m[1] !== undefined) parent.append(el('strong', {}, m[1]));
    else if (m[2] !== undefined) parent.append(el('em', {}, m[2]));
    else if (m[3] !== undefined) parent.append(el('code', {}, m[3]));
    else {
      const href = safeURL(m[5]);
      parent.append(href ? el('a', { href, target: '_blank', rel: 'noopener noreferrer' }, m[4]) : m[4]);
    }
    last = m.index + m[0].length;
  }
  parent.append(text.slice(last));
}

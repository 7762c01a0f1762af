// Small DOM helpers. Text always goes through textContent, never innerHTML, so API data
// (device names, tags, failure messages) cannot inject markup.

/**
 * h('tag.class#id', { attr: value, onclick: fn, dataset: {...}, style: {...} }, ...children)
 * Children may be strings, numbers, nodes, arrays or null/undefined/false (skipped).
 */
export function h(spec, attrs, ...children) {
  const [, tag = 'div', rest = ''] = /^([a-z0-9-]*)(.*)$/i.exec(spec) ?? [];
  const el = document.createElement(tag || 'div');
  for (const part of rest.match(/[.#][^.#]+/g) ?? []) {
    if (part[0] === '.') el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  // Anything that is not a plain attribute object (text, 0, a node, an array, null) is the first child.
  if (attrs === null || attrs === undefined || typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs)) {
    children.unshift(attrs);
    attrs = undefined;
  }
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'style') Object.assign(el.style, value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'class') el.className = value;
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const numberFormat = new Intl.NumberFormat();
/** Waves are stored from 0 (the API's `wave`, `currentWave`, `index`); people count them from 1. */
export const waveNo = (index) => (index === null || index === undefined ? '—' : index + 1);

/** The build (variant) a device runs, worth showing only once a version ships several (not `default`). */
export const buildName = (variant) => (variant && variant !== 'default' ? variant : null);

export const fmtInt = (n) => (n === null || n === undefined ? '—' : numberFormat.format(n));

export function fmtNum(n, digits = 1) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  return Number(n).toFixed(digits);
}

export function fmtPercent(ratio, digits = 1) {
  if (ratio === null || ratio === undefined) return '—';
  return `${(ratio * 100).toFixed(digits)}%`;
}

export function fmtTime(value) {
  if (!value) return '—';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? String(value) : d.toLocaleString();
}

/** "12 s ago", "3 min ago", ... for recent timestamps; a date for older ones. */
export function fmtAgo(value) {
  if (!value) return '—';
  const d = new Date(value);
  const seconds = Math.round((Date.now() - d.getTime()) / 1000);
  if (Number.isNaN(seconds)) return String(value);
  if (seconds < 0) return `in ${fmtDuration(-seconds)}`;
  if (seconds < 86_400) return `${fmtDuration(seconds)} ago`;
  return d.toLocaleDateString();
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86_400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86_400).toFixed(1)} d`;
}

export function badge(text, tone = '') {
  return h(`span.badge${tone ? `.${tone}` : ''}`, text);
}

export function notice(text, tone = '') {
  return h(`div.notice${tone ? `.${tone}` : ''}`, { role: tone === 'error' ? 'alert' : 'status' }, text);
}

/**
 * A horizontal bar split into segments: [{ label, value, className?, color? }].
 * Widths are shares of `total` (defaults to the sum), so a bar can show unfinished work as gap.
 */
export function segmentedBar(segments, { total, legend = true, label } = {}) {
  const sum = total ?? segments.reduce((a, s) => a + s.value, 0);
  const bar = h('div.bar', { role: 'img', 'aria-label': label ?? segments.map((s) => `${s.label}: ${s.value}`).join(', ') });
  for (const s of segments) {
    if (!s.value) continue;
    const span = h(`span${s.className ? `.${s.className}` : ''}`, {
      title: `${s.label}: ${fmtInt(s.value)}`,
      dataset: { segment: s.key ?? s.label, value: String(s.value) },
    });
    span.style.width = sum > 0 ? `${(100 * s.value) / sum}%` : '0';
    if (s.color) span.style.background = s.color;
    bar.append(span);
  }
  if (!legend) return bar;
  const items = segments
    .filter((s) => s.value > 0 || s.alwaysInLegend)
    .map((s) => {
      const swatch = h(`span.swatch${s.className ? `.${s.className}` : ''}`);
      if (s.color) swatch.style.background = s.color;
      return h('span', swatch, `${s.label} `, h('strong', fmtInt(s.value)));
    });
  return h('div', bar, h('div.legend', items));
}

/** Stable colours for model versions, in the order the versions are listed. */
const PALETTE = ['#2456d6', '#1f8f4e', '#c27c0e', '#8a56c9', '#d0457a', '#1596a3', '#6b7a2a', '#b0572b', '#5663a8', '#3d8f7a'];
export function paletteColor(index) {
  return PALETTE[index % PALETTE.length];
}

export function table(headers, rows, { empty = 'Nothing here yet.' } = {}) {
  if (rows.length === 0) return h('p.muted', empty);
  return h(
    'div.table-wrap',
    h(
      'table',
      h(
        'thead',
        h(
          'tr',
          headers.map((hd) => (typeof hd === 'string' ? h('th', hd) : h(`th${hd.num ? '.num' : ''}`, hd.label))),
        ),
      ),
      h('tbody', rows),
    ),
  );
}

export function props(pairs) {
  return h(
    'dl.props',
    pairs.filter(Boolean).flatMap(([k, v]) => [h('dt', k), h('dd', v === undefined || v === null || v === '' ? '—' : v)]),
  );
}

/** Semver-ish ordering for display (numeric parts, then pre-release before release). */
export function compareVersions(a, b) {
  const pa = String(a).split(/[-+]/)[0].split('.').map(Number);
  const pb = String(b).split(/[-+]/)[0].split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] || 0) - (pb[i] || 0);
    if (d !== 0) return d;
  }
  const preA = String(a).includes('-');
  const preB = String(b).includes('-');
  if (preA !== preB) return preA ? -1 : 1;
  return String(a).localeCompare(String(b));
}

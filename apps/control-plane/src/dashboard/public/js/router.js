// Hash router: #/rollouts/abc -> { page, params }. Each page's render(view, params, ctx) may return
// a cleanup function (close streams, destroy charts, clear timers) that runs before the next page.

const routes = [];

export function route(pattern, nav, load) {
  const names = [];
  const regex = new RegExp(
    `^${pattern.replace(/:([a-zA-Z]+)/g, (_, name) => {
      names.push(name);
      return '([^/]+)';
    })}$`,
  );
  routes.push({ regex, names, nav, load });
}

export function match(hash) {
  const [path, query = ''] = hash.replace(/^#/, '').split('?');
  for (const r of routes) {
    const m = r.regex.exec(path || '/');
    if (!m) continue;
    const params = Object.fromEntries(r.names.map((n, i) => [n, decodeURIComponent(m[i + 1])]));
    return { route: r, params, query: new URLSearchParams(query) };
  }
  return undefined;
}

/** Builds a hash link: link('devices', 'dev-1') -> '#/devices/dev-1'. */
export function link(...parts) {
  return `#/${parts.map((p) => encodeURIComponent(p)).join('/')}`;
}

/** Replaces the query part of the current hash without adding history noise. */
export function setQuery(params) {
  const [path] = location.hash.replace(/^#/, '').split('?');
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') search.set(k, String(v));
  const next = `#${path}${search.toString() ? `?${search}` : ''}`;
  if (next !== location.hash) history.replaceState(null, '', next);
}

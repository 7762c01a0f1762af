// The admin API client. The key lives in sessionStorage (gone when the tab closes) and every
// call sends it as a Bearer token; EventSource cannot send headers, so streams use ?key=.

const KEY_STORAGE = 'fleetline.apiKey';

export class ApiError extends Error {
  constructor(status, body) {
    super(body && typeof body === 'object' && body.message ? [].concat(body.message).join('; ') : `HTTP ${status}`);
    this.status = status;
    this.code = body && typeof body === 'object' ? body.code : undefined;
  }
}

export function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function storeKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

/** Builds `/api/v1/<path>?a=b`, skipping empty params; arrays repeat the param. */
export function apiPath(path, params = {}) {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    for (const item of [].concat(v)) search.append(k, String(item));
  }
  const query = search.toString();
  return `/api/v1/${path.replace(/^\//, '')}${query ? `?${query}` : ''}`;
}

let onUnauthenticated = () => {};
/** Called when the server refuses the key (revoked or wrong): the app goes back to sign-in. */
export function setUnauthenticatedHandler(handler) {
  onUnauthenticated = handler;
}

async function request(method, path, { params, body, key = storedKey(), signal, quiet = false } = {}) {
  const response = await fetch(apiPath(path, params), {
    method,
    signal,
    headers: {
      accept: 'application/json',
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  let parsed;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = text;
  }
  if (!response.ok) {
    if (response.status === 401 && !quiet) onUnauthenticated();
    throw new ApiError(response.status, parsed);
  }
  return parsed;
}

export const api = {
  get: (path, params, options = {}) => request('GET', path, { ...options, params }),
  post: (path, body = {}, options = {}) => request('POST', path, { ...options, body }),
  /** For sign-in: checks a key before it is stored (a refusal is the caller's to report). */
  whoami: (key) => request('GET', 'whoami', { key, quiet: true }),
};

/**
 * Opens a Server-Sent Events stream and calls `onEvent(type, data)` for each event.
 * Returns a close function. EventSource reconnects by itself; `onState(open)` reports it.
 */
export function openStream(path, types, onEvent, onState = () => {}) {
  const key = storedKey();
  const source = new EventSource(apiPath(path, { key }));
  const handle = (type) => (event) => {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    onEvent(type, data);
  };
  for (const type of types) source.addEventListener(type, handle(type));
  source.addEventListener('open', () => onState(true));
  source.addEventListener('error', () => onState(false));
  return () => source.close();
}

/** Role checks mirror the server (admin > operator > viewer); the server enforces them anyway. */
const RANK = { viewer: 1, operator: 2, admin: 3 };
export function canOperate(role) {
  return (RANK[role] ?? 0) >= RANK.operator;
}

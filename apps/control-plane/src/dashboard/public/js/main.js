import { api, canOperate, setUnauthenticatedHandler, storeKey, storedKey } from './api.js';
import { h, mount, notice } from './dom.js';
import { match, route } from './router.js';

const view = document.getElementById('view');
const nav = document.getElementById('nav');
const session = document.getElementById('session');
const who = document.getElementById('who');

route('/', 'overview', () => import('./pages/overview.js'));
route('/overview', 'overview', () => import('./pages/overview.js'));
route('/rollouts', 'rollouts', () => import('./pages/rollouts.js'));
route('/rollouts/:id', 'rollouts', () => import('./pages/rollout-detail.js'));
route('/models', 'models', () => import('./pages/models.js'));
route('/models/:model', 'models', () => import('./pages/models.js'));
route('/devices', 'devices', () => import('./pages/devices.js'));
route('/devices/:id', 'devices', () => import('./pages/device-detail.js'));

let principal;
let cleanup;
let renderSeq = 0;

async function render() {
  const seq = ++renderSeq;
  if (typeof cleanup === 'function') cleanup();
  cleanup = undefined;
  if (!principal) return;
  const found = match(location.hash || '#/overview');
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('active', a.dataset.nav === found?.route.nav);
  if (!found) {
    mount(view, h('h1', 'Not found'), h('p', h('a', { href: '#/overview' }, 'Back to the overview')));
    return;
  }
  try {
    const page = await found.route.load();
    if (seq !== renderSeq) return; // the user navigated again meanwhile
    mount(view);
    const ctx = { principal, canOperate: canOperate(principal.role), query: found.query, isCurrent: () => seq === renderSeq };
    cleanup = await page.render(view, found.params, ctx);
    if (seq !== renderSeq && typeof cleanup === 'function') cleanup();
  } catch (err) {
    if (seq === renderSeq) mount(view, notice(`Could not load this page: ${err.message}`, 'error'));
  }
}

function showSignIn(message) {
  principal = undefined;
  nav.hidden = true;
  session.hidden = true;
  if (typeof cleanup === 'function') cleanup();
  cleanup = undefined;
  const input = h('input', { type: 'password', name: 'key', autocomplete: 'off', placeholder: 'flk_…', required: true, 'aria-label': 'API key' });
  const error = h('div');
  const form = h(
    'form',
    { id: 'signin-form' },
    h('label.field', 'API key', input),
    error,
    h('button.primary', { type: 'submit' }, 'Sign in'),
    h('p.muted.small', 'The key stays in this browser tab only (sessionStorage) and is sent as a Bearer token to this control plane.'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void signIn(input.value.trim(), error);
  });
  mount(view, h('section.panel.signin', h('h1', 'Sign in to Fleetline'), message ? notice(message, 'error') : null, form));
  input.focus();
}

async function signIn(key, errorBox) {
  try {
    const me = await api.whoami(key);
    if (!me?.role) throw new Error('the server did not accept this key');
    storeKey(key);
    await start(me);
  } catch (err) {
    mount(errorBox, notice(err.status === 401 ? 'This key was not accepted.' : `Sign-in failed: ${err.message}`, 'error'));
  }
}

async function start(me) {
  principal = me;
  who.textContent = `${me.name ?? 'key'} · ${me.role}`;
  document.body.dataset.role = me.role;
  nav.hidden = false;
  session.hidden = false;
  await render();
}

document.getElementById('sign-out').addEventListener('click', () => {
  storeKey(null);
  showSignIn();
});
setUnauthenticatedHandler(() => {
  storeKey(null);
  showSignIn('The API key was refused (revoked or expired). Sign in again.');
});
window.addEventListener('hashchange', () => void render());

async function boot() {
  const key = storedKey();
  if (!key) return showSignIn();
  try {
    await start(await api.whoami(key));
  } catch (err) {
    if (err.status === 401) {
      storeKey(null);
      showSignIn('The saved API key is no longer accepted (revoked?). Sign in again.');
      return;
    }
    mount(view, notice(`Could not reach the control plane: ${err.message}`, 'error'));
  }
}

void boot();

import { api } from '../api.js';
import { fmtAgo, h, mount, table } from '../dom.js';
import { link, setQuery } from '../router.js';
import { shortId } from './overview.js';
import { keysetPager } from './pager.js';
import { rolloutProgressBar, stateBadge } from './rollout-parts.js';

const STATES = ['', 'preparing', 'scheduled', 'running', 'paused', 'completed', 'cancelled', 'aborted', 'rolled-back'];

/** Rollouts list: filter by state and model, newest first, keyset pages. */
export async function render(view, _params, ctx) {
  const state = h(
    'select',
    { name: 'state' },
    STATES.map((s) => h('option', { value: s }, s || 'any state')),
  );
  const model = h('input', { name: 'model', placeholder: 'model name', size: 16 });
  state.value = ctx.query.get('state') ?? '';
  model.value = ctx.query.get('model') ?? '';

  const pager = keysetPager({
    pageLabel: 'rollouts',
    load: (after) => api.get('rollouts', { state: state.value, model: model.value.trim(), after, limit: 25 }),
    renderItems: (items) =>
      table(
        ['Rollout', 'Model', 'Version', 'State', 'Progress', 'Created'],
        items.map((r) =>
          h(
            'tr',
            { dataset: { rollout: r.id } },
            h('td', h('a.mono', { href: link('rollouts', r.id) }, shortId(r.id))),
            h('td', r.model),
            h('td', h('code', r.version)),
            h('td', stateBadge(r.state)),
            h('td', rolloutProgressBar(r)),
            h('td', fmtAgo(r.createdAt)),
          ),
        ),
        { empty: 'No rollout matches.' },
      ),
  });

  const form = h('form.filters', h('label.field', 'State', state), h('label.field', 'Model', model), h('button.primary', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    setQuery({ state: state.value, model: model.value.trim() });
    void pager.reload();
  });
  state.addEventListener('change', () => form.requestSubmit());

  mount(
    view,
    h('div.page-head', h('div', h('h1', 'Rollouts'), h('p.muted', 'Staged rollouts of model versions, wave by wave.'))),
    form,
    h('section.panel', pager.element),
  );
  await pager.reload();
}

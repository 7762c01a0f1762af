import { api } from '../api.js';
import { buildName, fmtAgo, h, mount, table } from '../dom.js';
import { link, setQuery } from '../router.js';
import { keysetPager } from './pager.js';

/**
 * Devices: search by id prefix and tags, filter by model/version/presence. Keyset pages only:
 * the list never counts or loads the whole fleet.
 */
export async function render(view, _params, ctx) {
  const field = (name, label, attrs = {}) => {
    const input = h('input', { name, ...attrs });
    input.value = ctx.query.get(name) ?? '';
    return { input, el: h('label.field', label, input) };
  };
  const q = field('q', 'Device id starts with', { placeholder: 'e.g. cam-eu-', size: 18 });
  const tag = field('tag', 'Tags (key:value, comma-separated)', { placeholder: 'region:eu, line:3', size: 22 });
  const model = field('model', 'Model', { placeholder: 'model', size: 12 });
  const version = field('version', 'Active version', { placeholder: '1.2.0', size: 9 });
  const online = h(
    'select',
    { name: 'online' },
    h('option', { value: '' }, 'any'),
    h('option', { value: 'true' }, 'online'),
    h('option', { value: 'false' }, 'offline'),
  );
  online.value = ctx.query.get('online') ?? '';
  const limit = h(
    'select',
    { name: 'limit' },
    ['10', '50', '200'].map((n) => h('option', { value: n }, n)),
  );
  limit.value = ['10', '50', '200'].includes(ctx.query.get('limit')) ? ctx.query.get('limit') : '50';

  const filters = () => ({
    q: q.input.value.trim(),
    tag: tag.input.value
      .split(',')
      .map((t) => t.trim())
      .filter((t) => t.includes(':')),
    model: model.input.value.trim(),
    version: version.input.value.trim(),
    online: online.value,
  });

  const pager = keysetPager({
    pageLabel: 'devices',
    load: (after) => api.get('devices', { ...filters(), after, limit: limit.value }),
    renderItems: (items) =>
      table(
        ['Device', 'Presence', 'Tags', 'Models', 'Hardware', 'Last seen'],
        items.map((d) =>
          h(
            'tr',
            { dataset: { device: d.id } },
            h('td', h('a', { href: link('devices', d.id) }, h('code', d.id)), d.name && d.name !== d.id ? h('div.muted.small', d.name) : null),
            h('td', presence(d.online)),
            h('td', tagList(d.tags)),
            h('td', modelList(d.models)),
            h('td', d.hardwareClass ?? d.inventory?.hardwareClass ?? '—'),
            h('td', fmtAgo(d.lastSeenAt)),
          ),
        ),
        { empty: 'No device matches these filters.' },
      ),
  });

  const form = h(
    'form.filters',
    q.el,
    tag.el,
    model.el,
    version.el,
    h('label.field', 'Presence', online),
    h('label.field', 'Per page', limit),
    h('button.primary', { type: 'submit' }, 'Search'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const f = filters();
    setQuery({ ...f, tag: f.tag.join(','), limit: limit.value === '50' ? '' : limit.value });
    void pager.reload();
  });
  online.addEventListener('change', () => form.requestSubmit());
  limit.addEventListener('change', () => form.requestSubmit());

  mount(
    view,
    h('div.page-head', h('div', h('h1', 'Devices'), h('p.muted', 'Search the fleet; pages follow the id order.'))),
    form,
    h('section.panel', pager.element),
  );
  await pager.reload();
}

export function presence(online) {
  return h('span', h(`span.dot${online ? '.ok' : ''}`), online ? 'online' : 'offline');
}

export function tagList(tags) {
  const entries = Object.entries(tags ?? {});
  if (entries.length === 0) return h('span.muted', '—');
  return h(
    'span.actions',
    entries.slice(0, 6).map(([k, v]) => h('span.badge.idle', `${k}=${v}`)),
    entries.length > 6 ? h('span.muted.small', `+${entries.length - 6}`) : null,
  );
}

function modelList(models) {
  const list = Array.isArray(models)
    ? models
    : Object.entries(models ?? {}).map(([model, m]) => ({ model, ...(typeof m === 'object' ? m : { activeVersion: m }) }));
  if (list.length === 0) return h('span.muted', '—');
  return h(
    'span.actions',
    list.map((m) =>
      h(
        'span.badge',
        { dataset: { build: m.variant ?? '' } },
        `${m.model ?? m.name}@${m.activeVersion ?? m.active_version ?? m.version ?? '—'}${buildName(m.variant) ? ` · ${m.variant}` : ''}`,
      ),
    ),
  );
}

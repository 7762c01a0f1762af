import { api, openStream } from '../api.js';
import { compareVersions, fmtAgo, fmtInt, h, mount, notice, paletteColor, segmentedBar, table } from '../dom.js';
import { link } from '../router.js';
import { rolloutProgressBar, stateBadge } from './rollout-parts.js';

/** Fleet overview: device counts and, per model, how many devices run each version, live. */
export async function render(view, _params, ctx) {
  const stats = h('div.stats');
  const models = h('div');
  const rollouts = h('div');
  const live = h('span.live', 'connecting…');
  mount(
    view,
    h('div.page-head', h('div', h('h1', 'Fleet overview'), h('p.muted', 'Devices, and the model versions they run right now.')), live),
    stats,
    h('section.panel', h('h2', 'Model versions across the fleet'), models),
    h('section.panel', h('h2', 'Active rollouts'), rollouts),
  );

  const colors = new Map();
  const show = (summary) => {
    if (!ctx.isCurrent()) return;
    renderStats(stats, summary.devices);
    renderModels(models, summary.models ?? [], colors);
  };

  try {
    show(await api.get('fleet/summary'));
  } catch (err) {
    // Shown until the stream delivers a summary.
    mount(models, notice(`Could not load the fleet summary: ${err.message}`, 'error'));
  }

  const close = openStream(
    'fleet/stream',
    ['summary'],
    (_type, summary) => {
      live.textContent = `live · updated ${new Date(summary.at ?? Date.now()).toLocaleTimeString()}`;
      show(summary);
    },
    (open) => {
      live.classList.toggle('on', open);
      if (!open) live.textContent = 'reconnecting…';
    },
  );

  // Active rollouts: the list, then the detail (with device counts) of the first few.
  const loadRollouts = async () => {
    try {
      const lists = await Promise.all(['running', 'paused', 'scheduled', 'preparing'].map((state) => api.get('rollouts', { state, limit: 10 })));
      const items = lists.flatMap((l) => l.items ?? []);
      const detailed = await Promise.all(items.slice(0, 5).map((r) => api.get(`rollouts/${encodeURIComponent(r.id)}`).catch(() => r)));
      if (ctx.isCurrent()) renderRollouts(rollouts, [...detailed, ...items.slice(5)]);
    } catch (err) {
      if (ctx.isCurrent()) mount(rollouts, h('p.muted', `Could not load rollouts: ${err.message}`));
    }
  };
  await loadRollouts();
  const timer = setInterval(() => void loadRollouts(), 5000);

  return () => {
    close();
    clearInterval(timer);
  };
}

function renderStats(el, devices = {}) {
  const stat = (label, value, tone, key) =>
    h(`div.stat${tone ? `.${tone}` : ''}`, { dataset: { stat: key } }, h('div.label', label), h('div.value', fmtInt(value)));
  mount(
    el,
    stat('Devices', devices.total ?? 0, '', 'total'),
    stat('Online', devices.online ?? 0, 'ok', 'online'),
    stat('Offline', devices.offline ?? 0, devices.offline ? 'bad' : '', 'offline'),
  );
}

function renderModels(el, models, colors) {
  if (models.length === 0) {
    mount(el, h('p.muted', 'No device runs or is assigned a model yet.'));
    return;
  }
  const rows = [...models]
    .sort((a, b) => a.model.localeCompare(b.model))
    .map((m) => {
      const versions = [...(m.versions ?? [])].sort((a, b) => compareVersions(b.version, a.version));
      for (const v of [...versions].reverse()) {
        const key = `${m.model}@${v.version}`;
        if (!colors.has(key)) colors.set(key, paletteColor([...colors.keys()].filter((k) => k.startsWith(`${m.model}@`)).length));
      }
      const segments = versions.map((v) => ({ key: v.version, label: v.version, value: v.devices, color: colors.get(`${m.model}@${v.version}`) }));
      if (m.unassigned) segments.push({ key: '(none)', label: 'not running it', value: m.unassigned, className: 's-pending' });
      const total = segments.reduce((a, s) => a + s.value, 0);
      return h(
        'div.model-row',
        { dataset: { model: m.model } },
        h('div', h('a', { href: link('models', m.model) }, h('strong', m.model)), h('div.muted.small', `${fmtInt(total)} devices`)),
        segmentedBar(segments, { label: `${m.model} versions` }),
      );
    });
  mount(el, rows);
}

function renderRollouts(el, items) {
  mount(
    el,
    table(
      ['Rollout', 'State', 'Progress', 'Started'],
      items.map((r) =>
        h(
          'tr',
          { dataset: { rollout: r.id } },
          h('td', h('a', { href: link('rollouts', r.id) }, `${r.model} → ${r.version}`), h('div.muted.small.mono', shortId(r.id))),
          h('td', stateBadge(r.state)),
          h('td', rolloutProgressBar(r)),
          h('td', fmtAgo(r.startedAt ?? r.createdAt)),
        ),
      ),
      { empty: 'No rollout is running, paused, scheduled or preparing.' },
    ),
  );
}

export function shortId(id) {
  return String(id).slice(0, 8);
}

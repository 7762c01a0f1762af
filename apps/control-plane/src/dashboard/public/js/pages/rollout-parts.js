import { badge, fmtInt, h, segmentedBar, waveNo } from '../dom.js';

/** Per-device rollout states grouped for display, in bar order (done work first). */
export const STATE_GROUPS = [
  { key: 'committed', label: 'committed', className: 's-committed', states: ['committed'] },
  {
    key: 'in-progress',
    label: 'in progress',
    className: 's-progress',
    states: ['downloading', 'downloaded', 'verifying', 'installing', 'activating', 'health-checking'],
  },
  { key: 'notified', label: 'notified', className: 's-notified', states: ['notified'] },
  { key: 'failed', label: 'failed', className: 's-failed', states: ['failed', 'timed-out'] },
  { key: 'rolled-back', label: 'rolled back', className: 's-rolledback', states: ['rolled-back', 'rolling-back'] },
  { key: 'skipped', label: 'skipped', className: 's-skipped', states: ['skipped', 'incompatible'] },
  { key: 'pending', label: 'pending', className: 's-pending', states: ['pending'] },
];

/** Accepts `{ state: n }` or `[{ state, count }]` and returns a plain `{ state: n }`. */
export function normaliseCounts(counts) {
  if (!counts) return {};
  if (Array.isArray(counts)) return Object.fromEntries(counts.map((c) => [c.state, Number(c.count ?? c.devices ?? 0)]));
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, Number(v) || 0]));
}

export function groupCounts(counts) {
  const plain = normaliseCounts(counts);
  const known = new Set(STATE_GROUPS.flatMap((g) => g.states));
  const groups = STATE_GROUPS.map((g) => ({ ...g, value: g.states.reduce((a, s) => a + (plain[s] ?? 0), 0) }));
  // A state this page does not know yet still counts, as in progress, rather than vanishing.
  const unknown = Object.entries(plain)
    .filter(([s]) => !known.has(s) && s !== 'total')
    .reduce((a, [, n]) => a + n, 0);
  groups[1].value += unknown;
  return groups;
}

/** Bar of device states; `total` keeps unscheduled devices visible as empty track. */
export function stateBar(counts, { total, legend = true, label } = {}) {
  const groups = groupCounts(counts);
  const sum = groups.reduce((a, g) => a + g.value, 0);
  return segmentedBar(groups, { total: Math.max(total ?? sum, sum), legend, label });
}

/** Progress of a rollout: a device-state bar when counts are known (detail), else the wave position. */
export function rolloutProgressBar(rollout) {
  // The engine has not materialised its membership yet: nothing to count.
  if (rollout.state === 'preparing') return h('span.muted.small', `preparing membership · ${rollout.waveCount} waves`);
  const remaining = (rollout.waveCount ?? 0) - 1 - rollout.currentWave;
  const waves =
    rollout.currentWave < 0
      ? `${rollout.waveCount} waves, not started`
      : `wave ${waveNo(rollout.currentWave)} · ${remaining > 0 ? `${remaining} more` : 'last'}`;
  if (!rollout.counts) return h('span.muted.small', `${waves} · ${fmtInt(rollout.targetCount)} devices`);
  const committed = groupCounts(rollout.counts)[0].value;
  return h(
    'div',
    stateBar(rollout.counts, { total: rollout.targetCount, legend: false, label: `${rollout.model} rollout progress` }),
    h('div.muted.small', `${fmtInt(committed)} of ${fmtInt(rollout.targetCount)} committed · ${waves}`),
  );
}

const STATE_TONES = {
  preparing: 'idle',
  running: '',
  scheduled: 'idle',
  paused: 'warn',
  completed: 'ok',
  cancelled: 'idle',
  aborted: 'bad',
  'rolled-back': 'bad',
};

export function stateBadge(state) {
  const el = badge(state ?? 'unknown', STATE_TONES[state] ?? 'idle');
  el.dataset.state = state ?? '';
  return el;
}

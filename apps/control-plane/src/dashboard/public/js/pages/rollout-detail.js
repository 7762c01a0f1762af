import { api, openStream } from '../api.js';
import { badge, fmtAgo, fmtDuration, fmtInt, fmtNum, fmtTime, h, mount, notice, props, table, buildName, waveNo } from '../dom.js';
import { link } from '../router.js';
import { keysetPager } from './pager.js';
import { groupCounts, stateBadge, stateBar } from './rollout-parts.js';

/** Which operations make sense in which rollout state (the server has the final word). */
const OPERATIONS = [
  { action: 'pause', label: 'Pause', when: ['running', 'scheduled'] },
  { action: 'resume', label: 'Resume', when: ['paused'] },
  { action: 'advance', label: 'Advance to next wave', when: ['running', 'paused'], needsNextWave: true },
  { action: 'install', label: 'Install downloaded', when: ['running', 'paused'], downloadOnly: true },
  { action: 'retry', label: 'Retry failed', when: ['running', 'paused'] },
  {
    action: 'abort',
    label: 'Abort and roll back',
    when: ['scheduled', 'running', 'paused'],
    danger: true,
    confirm: 'Abort this rollout and put the previous version back on every device that took the new one?',
  },
];
const TERMINAL = ['completed', 'cancelled', 'aborted', 'rolled-back'];

/** One rollout: waves with device-state bars, gates against thresholds, operations and the event log, live. */
export async function render(view, { id }, ctx) {
  const head = h('div.page-head');
  const message = h('div');
  const summary = h('section.panel');
  const waves = h('section.panel');
  const gates = h('section.panel');
  const events = h('section.panel');
  const devices = h('section.panel');
  const live = h('span.live', 'connecting…');
  mount(view, head, message, summary, waves, gates, devices, events);

  let rollout;
  let busy = false;
  let olderEvents = [];
  let olderCursor;

  const show = (data) => {
    if (!ctx.isCurrent()) return;
    rollout = data;
    renderHead(head, data, live, ctx.canOperate ? operationButtons(data, run, busy) : null);
    renderSummary(summary, data);
    renderWaves(waves, data);
    renderGates(gates, data);
    renderEvents(events, [...(data.events?.items ?? []), ...olderEvents], olderCursor ?? data.events?.next, loadOlder);
  };

  async function loadOlder(cursor) {
    const page = await api.get(`rollouts/${encodeURIComponent(id)}/events`, { after: cursor, limit: 50 });
    olderEvents = [...olderEvents, ...(page.items ?? [])];
    olderCursor = page.next ?? null;
    show(rollout);
  }

  async function refresh() {
    try {
      show(await api.get(`rollouts/${encodeURIComponent(id)}`));
    } catch (err) {
      if (ctx.isCurrent())
        mount(message, notice(err.status === 404 || err.status === 400 ? 'No such rollout.' : `Could not load the rollout: ${err.message}`, 'error'));
    }
  }

  async function run(op) {
    if (op.confirm && !window.confirm(op.confirm)) return;
    busy = true;
    show(rollout);
    try {
      const updated = await api.post(`rollouts/${encodeURIComponent(id)}/${op.action}`);
      mount(message, notice(`${op.label}: done.`));
      busy = false;
      if (updated?.id === id) show(updated);
    } catch (err) {
      busy = false;
      mount(message, notice(`${op.label} failed: ${err.message}`, 'error'));
      await refresh();
    }
  }

  await refresh();
  if (!rollout) return undefined;
  await deviceList(devices, id, rollout);

  // `progress` events carry the whole rollout detail whenever it changes.
  const close = openStream(
    `rollouts/${encodeURIComponent(id)}/stream`,
    ['progress'],
    (_type, data) => {
      live.textContent = `live · ${new Date().toLocaleTimeString()}`;
      if (data?.id === id && !busy) show(data);
    },
    (open) => {
      live.classList.toggle('on', open);
      if (!open) live.textContent = rollout && TERMINAL.includes(rollout.state) ? 'finished' : 'reconnecting…';
    },
  );
  return close;
}

const DEVICE_STATES = ['', 'pending', 'notified', 'downloading', 'downloaded', 'installing', 'committed', 'failed', 'timed-out', 'rolled-back', 'skipped'];
const DEVICE_TONE = { committed: 'ok', failed: 'bad', 'timed-out': 'bad', 'rolled-back': 'bad', skipped: 'warn', pending: 'idle' };

/** Devices of the rollout by state and wave (keyset pages; read on demand, not live). */
async function deviceList(el, id, r) {
  const state = h(
    'select',
    { name: 'device-state', 'aria-label': 'Device state' },
    DEVICE_STATES.map((s) => h('option', { value: s }, s || 'any state')),
  );
  const wave = h(
    'select',
    { name: 'wave', 'aria-label': 'Wave' },
    h('option', { value: '' }, 'any wave'),
    (r.waves ?? []).map((w) => h('option', { value: String(w.index) }, `wave ${waveNo(w.index)}`)),
  );
  const pager = keysetPager({
    pageLabel: 'devices',
    load: (after) => api.get(`rollouts/${encodeURIComponent(id)}/devices`, { state: state.value, wave: wave.value, after, limit: 50 }),
    renderItems: (items) => {
      // The build column appears once the version ships several builds (variants).
      const builds = items.some((d) => buildName(d.variant));
      return table(
        ['Device', { label: 'Wave', num: true }, ...(builds ? ['Build'] : []), 'State', 'Why', { label: 'Attempts', num: true }, 'Notified', 'Updated'],
        items.map((d) =>
          h(
            'tr',
            { dataset: { rolloutDevice: d.deviceId } },
            h('td', h('a', { href: link('devices', d.deviceId) }, h('code', d.deviceId))),
            h('td.num', waveNo(d.wave)),
            builds ? h('td', { dataset: { build: d.variant ?? '' } }, d.variant ?? '—') : null,
            h('td', badge(d.state, DEVICE_TONE[d.state] ?? '')),
            h('td.small', d.failureCode ? h('code', d.failureCode) : null, d.reason ? ` ${d.reason}` : ''),
            h('td.num', d.attempts),
            h('td', fmtAgo(d.notifiedAt)),
            h('td', fmtAgo(d.updatedAt)),
          ),
        ),
        { empty: 'No device in this state.' },
      );
    },
  });
  const form = h('form.filters', h('label.field', 'State', state), h('label.field', 'Wave', wave), h('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void pager.reload();
  });
  mount(el, h('h2', 'Devices'), form, pager.element);
  await pager.reload();
}

function operationButtons(r, run, busy) {
  const buttons = OPERATIONS.filter((op) => op.when.includes(r.state))
    .filter((op) => !op.needsNextWave || r.currentWave + 1 < (r.waveCount ?? r.waves?.length ?? 0))
    .filter((op) => !op.downloadOnly || r.action === 'download-only')
    .map((op) =>
      h(`button${op.danger ? '.danger' : ''}`, { type: 'button', disabled: busy, dataset: { action: op.action }, onclick: () => void run(op) }, op.label),
    );
  return buttons.length ? h('div.actions', { 'aria-label': 'Rollout operations' }, buttons) : null;
}

function renderHead(el, r, live, actions) {
  mount(
    el,
    h(
      'div',
      h('p.muted.small', h('a', { href: '#/rollouts' }, '← Rollouts')),
      h('h1', `${r.model} → ${r.version}`),
      h('div.actions', stateBadge(r.state), r.stateReason ? h('span.muted', r.stateReason) : null, live),
    ),
    actions,
  );
}

function renderSummary(el, r) {
  const groups = groupCounts(r.counts);
  const committed = groups.find((g) => g.key === 'committed').value;
  mount(
    el,
    h('h2', 'Summary'),
    h(
      'div.grid',
      props([
        ['Rollout', h('code', r.id)],
        ['Model', h('a', { href: link('models', r.model) }, r.model)],
        ['Version', [h('code', r.version), r.baselineVersion ? h('span.muted', ` replacing ${r.baselineVersion}`) : null]],
        ['Action', r.action],
        ['On failure', r.spec?.onFailure],
        ['Wave', r.currentWave >= 0 ? `${waveNo(r.currentWave)} of ${r.waveCount}` : `not started (${r.waveCount} waves)`],
        ['Created', `${fmtTime(r.createdAt)}${r.createdBy ? ` by ${r.createdBy}` : ''}`],
        r.startedAt ? ['Started', fmtTime(r.startedAt)] : ['Starts', fmtTime(r.startAt)],
        r.finishedAt ? ['Finished', fmtTime(r.finishedAt)] : null,
      ]),
      h(
        'div',
        h(
          'h3',
          r.state === 'preparing'
            ? `Preparing the membership of ${fmtInt(r.spec?.target?.deviceIdCount ?? 0)} explicit device ids…`
            : `${fmtInt(r.targetCount)} devices targeted${r.skippedCount ? ` · ${fmtInt(r.skippedCount)} skipped` : ''}`,
        ),
        stateBar(r.counts, { total: r.targetCount, label: 'all waves' }),
        h('p.muted.small', `${fmtInt(committed)} of ${fmtInt(r.targetCount)} committed`),
      ),
    ),
  );
}

function waveState(w, r) {
  if (w.finishedAt) return { label: 'done', tone: 'ok' };
  if (w.startedAt) return { label: r.state === 'paused' ? 'paused' : w.successSince ? 'baking' : 'running', tone: r.state === 'paused' ? 'warn' : '' };
  return { label: 'waiting', tone: 'idle' };
}

function renderWaves(el, r) {
  mount(
    el,
    h('h2', 'Waves'),
    (r.waves ?? []).map((w) => {
      const spec = w.spec ?? {};
      const state = waveState(w, r);
      const a = w.assessment;
      const cover = spec.percent !== undefined ? `up to ${spec.percent}% of target` : spec.count !== undefined ? `up to ${fmtInt(spec.count)} devices` : '';
      const bakeLeft = w.successSince && spec.bakeSeconds ? spec.bakeSeconds - (Date.now() - Date.parse(w.successSince)) / 1000 : undefined;
      return h(
        'div.wave',
        { dataset: { wave: String(w.index), waveState: state.label } },
        h(
          'div.wave-head',
          h(
            'span',
            h('strong', `Wave ${waveNo(w.index)}`),
            ' ',
            badge(state.label, state.tone),
            r.currentWave === w.index && !r.finishedAt ? h('span.muted.small', ' current') : null,
          ),
          h(
            'span.muted.small',
            [
              spec.action === 'shadow'
                ? `shadow: ${fmtNum(spec.shadow?.samplePercent, 1)}% of inferences beside the active version for ${fmtDuration(spec.shadow?.durationSeconds ?? 0)}${spec.shadow?.maxSamples ? ` or ${fmtInt(spec.shadow.maxSamples)} inferences` : ''}, never switched`
                : null,
              cover,
              `${fmtInt(w.size)} devices`,
              `success ≥ ${spec.successPercent ?? 100}%`,
              spec.failure
                ? `fail at ${spec.failure.percent !== undefined ? `${spec.failure.percent}%` : fmtInt(spec.failure.count)} (min ${spec.failure.minExecuted})`
                : null,
              spec.bakeSeconds ? `bake ${fmtDuration(spec.bakeSeconds)}${bakeLeft > 0 ? ` (${fmtDuration(bakeLeft)} left)` : ''}` : null,
              spec.manualApproval ? 'manual approval' : null,
            ]
              .filter(Boolean)
              .join(' · '),
          ),
        ),
        stateBar(w.counts, { total: w.size, label: `wave ${waveNo(w.index)}` }),
        a && w.startedAt
          ? h(
              'p.muted.small',
              `succeeded ${fmtNum(a.successPercent, 0)}% (${fmtInt(a.succeeded)}/${fmtInt(a.members)}) · failed ${fmtNum(a.failurePercent, 0)}% of ${fmtInt(a.executed)} executed · ${fmtInt(a.inFlight)} in flight`,
            )
          : null,
      );
    }),
  );
}

/** Last gate results next to each configured gate, per wave that has gates. */
function renderGates(el, r) {
  const rows = [];
  for (const w of r.waves ?? []) {
    const specs = w.spec?.gates ?? [];
    const results = Array.isArray(w.gates?.results) ? w.gates.results : [];
    for (const spec of specs) {
      const g = results.find((x) => x.metric === spec.metric) ?? {};
      rows.push(
        h(
          'tr',
          { dataset: { gate: spec.metric, wave: String(w.index) } },
          h('td', `Wave ${waveNo(w.index)}`),
          h('td', h('code', spec.metric)),
          h('td.num', fmtMetric(spec.metric, g.value)),
          h('td.num', fmtMetric(spec.metric, g.baseline)),
          h(
            'td.num',
            g.threshold !== undefined && g.threshold !== null
              ? `${spec.metric === 'shadow_agreement' ? '≥' : '≤'} ${fmtMetric(spec.metric, g.threshold)}`
              : describeSpec(spec),
          ),
          h('td.num', g.samples !== undefined ? `${fmtInt(g.samples)} / ${fmtInt(g.baselineSamples)}` : '—'),
          h(
            'td',
            g.passed === true ? badge('pass', 'ok') : g.passed === false ? badge('breached', 'bad') : badge('waiting', 'idle'),
            w.gates?.overridden ? badge('overridden', 'warn') : null,
          ),
          h('td.muted.small', g.reason ?? (w.gates?.evaluatedAt ? '' : 'not evaluated yet')),
        ),
      );
    }
  }
  mount(
    el,
    h('h2', 'Health gates'),
    table(
      [
        'Wave',
        'Metric',
        { label: 'Canary', num: true },
        { label: 'Baseline', num: true },
        { label: 'Threshold', num: true },
        { label: 'Samples', num: true },
        'Result',
        'Why',
      ],
      rows,
      {
        empty: 'No telemetry gates on this rollout.',
      },
    ),
  );
}

function describeSpec(g) {
  if (g.min !== undefined) return `≥ ${g.min}`;
  if (g.maxRatio !== undefined) return `≤ ${g.maxRatio}× baseline`;
  if (g.maxIncrease !== undefined) return `≤ baseline + ${g.maxIncrease}`;
  if (g.max !== undefined) return `≤ ${g.max}`;
  return '—';
}

function fmtMetric(metric, value) {
  if (value === null || value === undefined) return '—';
  // Shadow metrics: the candidate beside the active version on the same devices (baseline: the active version).
  if (metric === 'error_rate' || metric === 'shadow_error_rate' || metric === 'shadow_agreement') return `${(value * 100).toFixed(2)}%`;
  if (metric.startsWith('latency') || metric === 'shadow_latency_p95') return `${fmtNum(value, 1)} ms`;
  return fmtNum(value, 3);
}

function renderEvents(el, events, next, loadOlder) {
  const more = next ? h('button', { type: 'button', onclick: () => void loadOlder(next) }, 'Older events') : null;
  mount(
    el,
    h('h2', 'Event log'),
    events.length === 0
      ? h('p.muted', 'No events yet.')
      : h(
          'ol.events',
          events.map((e) =>
            h(
              'li',
              { dataset: { eventType: e.type } },
              h('time', { datetime: e.at, title: fmtTime(e.at) }, fmtTime(e.at)),
              h(
                'div',
                h('strong', e.type),
                e.wave !== null && e.wave !== undefined ? h('span.muted', ` · wave ${waveNo(e.wave)}`) : null,
                e.message ? ` — ${e.message}` : '',
                e.data && Object.keys(e.data).length
                  ? h('details', h('summary.muted.small', 'numbers'), h('pre.mono.small', JSON.stringify(e.data, null, 2)))
                  : null,
              ),
            ),
          ),
        ),
    more ? h('div.pager', more) : null,
  );
}

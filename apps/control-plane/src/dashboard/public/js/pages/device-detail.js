import { api } from '../api.js';
import { lineChart } from '../charts.js';
import { badge, buildName, fmtAgo, fmtInt, fmtNum, fmtPercent, fmtTime, h, mount, notice, paletteColor, props, table, waveNo } from '../dom.js';
import { link } from '../router.js';
import { presence, tagList } from './devices.js';
import { errorRate, inferences, latency, toPoints } from './telemetry-data.js';

const STATE_TONE = { committed: 'ok', failed: 'bad', 'rolled-back': 'bad', incompatible: 'warn' };

/** One device: identity, inventory, per-model versions and update state, rollout history, telemetry. */
export async function render(view, { id }, ctx) {
  let device;
  try {
    device = await api.get(`devices/${encodeURIComponent(id)}`);
  } catch (err) {
    mount(view, notice(err.status === 404 ? `No device ${id}.` : `Could not load the device: ${err.message}`, 'error'));
    return undefined;
  }
  if (!ctx.isCurrent()) return undefined;
  const inv = device.inventory ?? {};
  const telemetry = h('section.panel', h('h2', 'Telemetry (last hour)'), h('p.muted', 'Loading…'));
  const history = h('section.panel', h('h2', 'Update history'), h('p.muted', 'Loading…'));
  mount(
    view,
    h(
      'div.page-head',
      h(
        'div',
        h('p.muted.small', h('a', { href: '#/devices' }, '← Devices')),
        h('h1', h('code', device.id)),
        h(
          'div.actions',
          presence(device.online),
          device.decommissionedAt ? badge('decommissioned', 'bad') : null,
          h('span.muted', `last seen ${fmtAgo(device.lastSeenAt)}`),
        ),
      ),
    ),
    h(
      'div.grid',
      h(
        'section.panel',
        h('h2', 'Device'),
        props([
          ['Name', device.name],
          ['Tags', tagList(device.tags)],
          ['Enrolled', fmtTime(device.enrolledAt)],
          ['Presence changed', fmtTime(device.presenceChangedAt)],
        ]),
      ),
      h(
        'section.panel',
        h('h2', 'Inventory'),
        props([
          ['Hardware class', inv.hardwareClass ?? device.hardwareClass],
          ['OS / arch', [inv.os, inv.arch].filter(Boolean).join(' / ')],
          ['Agent', inv.agentVersion ?? device.agentVersion],
          [
            'Runtimes',
            Object.entries(inv.runtimes ?? {})
              .map(([k, v]) => `${k} ${v}`)
              .join(', '),
          ],
          ['Accelerators', (inv.accelerators ?? []).join(', ')],
          ['CPUs', inv.cpuCount],
          ['Memory', inv.memoryBytes ? `${fmtNum(inv.memoryBytes / 2 ** 30, 1)} GiB` : undefined],
          ['Free disk', inv.diskFreeBytes ? `${fmtNum(inv.diskFreeBytes / 2 ** 30, 1)} GiB` : undefined],
        ]),
      ),
    ),
    h('section.panel', h('h2', 'Models'), modelTable(device)),
    history,
    telemetry,
  );
  void loadHistory(history, id, ctx);

  let chart;
  try {
    const to = new Date();
    const from = new Date(to.getTime() - 3600_000);
    const answer = await api.get(`telemetry/devices/${encodeURIComponent(id)}`, { from: from.toISOString(), to: to.toISOString() });
    if (!ctx.isCurrent()) return undefined;
    chart = await drawTelemetry(telemetry, answer, { xMin: from.getTime(), xMax: to.getTime() });
  } catch (err) {
    if (ctx.isCurrent()) mount(telemetry, h('h2', 'Telemetry (last hour)'), h('p.muted', err.status === 404 ? 'No telemetry from this device.' : err.message));
  }
  return () => chart?.destroy();
}

/** Desired vs reported per model: the device's update history as far as the control plane keeps it. */
function modelTable(device) {
  const models = device.models ?? [];
  const builds = models.some((m) => buildName(m.variant) || buildName(m.desiredVariant));
  return table(
    // The build column appears once a version ships several builds (variants).
    ['Model', 'Active', ...(builds ? ['Build'] : []), 'Previous', 'Desired', 'Update state', 'Rollout', 'Reported'],
    models.map((m) => {
      const desired = { version: m.desiredVersion, revision: m.desiredRevision, rolloutId: m.desiredRolloutId, action: m.desiredAction };
      const reported = { state: m.reportedState, version: m.reportedVersion, at: m.reportedAt };
      const failure = m.failure;
      const state = reported.state;
      return h(
        'tr',
        { dataset: { model: m.model } },
        h('td', h('a', { href: link('models', m.model) }, m.model)),
        h('td', h('code', m.activeVersion ?? '—')),
        builds
          ? h(
              'td',
              { dataset: { build: m.variant ?? '' } },
              m.variant ?? '—',
              m.desiredVariant && m.desiredVariant !== m.variant ? h('span.muted.small', ` → ${m.desiredVariant}`) : null,
            )
          : null,
        h('td', h('code', m.previousVersion ?? '—')),
        h('td', desired.version ? [h('code', desired.version), h('span.muted.small', ` rev ${desired.revision}`)] : '—'),
        h(
          'td',
          state ? badge(state, STATE_TONE[state] ?? '') : '—',
          reported.version && reported.version !== m.activeVersion ? h('span.muted.small', ` → ${reported.version}`) : null,
          failure ? h('div.small', { title: failure.message ?? '' }, h('code', failure.code), failure.message ? ` ${failure.message}` : '') : null,
        ),
        h('td', desired.rolloutId ? h('a', { href: link('rollouts', desired.rolloutId) }, String(desired.rolloutId).slice(0, 8)) : '—'),
        h('td', fmtAgo(reported.at)),
      );
    }),
    { empty: 'No model assigned to this device.' },
  );
}

const ROLLOUT_DEVICE_TONE = { committed: 'ok', failed: 'bad', 'timed-out': 'bad', 'rolled-back': 'bad', pending: 'idle' };

/** The rollouts this device took part in, newest first. */
async function loadHistory(panel, id, ctx) {
  try {
    const { items } = await api.get(`devices/${encodeURIComponent(id)}/rollouts`, { limit: 50 });
    if (!ctx.isCurrent()) return;
    mount(
      panel,
      h('h2', 'Update history'),
      table(
        ['Rollout', 'Model', 'From → to', { label: 'Wave', num: true }, 'Device state', { label: 'Attempts', num: true }, 'Rollout state', 'Updated'],
        items.map((e) =>
          h(
            'tr',
            { dataset: { historyRollout: e.rolloutId } },
            h('td', h('a.mono', { href: link('rollouts', e.rolloutId) }, e.rolloutId.slice(0, 8))),
            h('td', e.model),
            h('td', h('code', e.fromVersion ?? '—'), ' → ', h('code', e.version)),
            h('td.num', waveNo(e.wave)),
            h(
              'td',
              badge(e.state, ROLLOUT_DEVICE_TONE[e.state] ?? ''),
              e.failureCode ? h('div.small', h('code', e.failureCode), e.reason ? ` ${e.reason}` : '') : e.reason ? h('div.small.muted', e.reason) : null,
            ),
            h('td.num', e.attempts),
            h('td', e.rolloutState),
            h('td', fmtAgo(e.updatedAt)),
          ),
        ),
        { empty: 'This device has not been part of a rollout.' },
      ),
    );
  } catch (err) {
    if (ctx.isCurrent()) mount(panel, h('h2', 'Update history'), h('p.muted', `Could not load the history: ${err.message}`));
  }
}

async function drawTelemetry(panel, answer, xRange) {
  const groups = answer?.models ?? [];
  if (groups.length === 0) {
    mount(panel, h('h2', 'Telemetry (last hour)'), h('p.muted', 'No telemetry from this device in the last hour.'));
    return undefined;
  }
  const canvas = h('canvas', { 'aria-label': 'Device latency p95 and error rate' });
  mount(
    panel,
    h('h2', 'Telemetry (last hour)'),
    table(
      ['Model', 'Version', { label: 'Inferences', num: true }, { label: 'Error rate', num: true }, { label: 'p95 ms', num: true }],
      groups.map((g) =>
        h(
          'tr',
          h('td', g.model),
          h('td', h('code', g.version)),
          h('td.num', fmtInt(inferences(g.totals))),
          h('td.num', fmtPercent(errorRate(g.totals), 2)),
          h('td.num', fmtNum(latency(g.totals, 'p95'), 1)),
        ),
      ),
    ),
    h('div.chart-box', canvas),
  );
  return lineChart(
    canvas,
    groups.map((g, i) => ({ label: `${g.model} ${g.version} p95`, color: paletteColor(i), points: toPoints(g.series, (p) => latency(p, 'p95')) })),
    { yFormat: (v) => `${fmtNum(v, 0)} ms`, yMin: 0, ...xRange },
  );
}

import { api } from '../api.js';
import { lineChart } from '../charts.js';
import { compareVersions, fmtAgo, fmtInt, fmtNum, fmtPercent, h, mount, notice, paletteColor, table, waveNo } from '../dom.js';
import { link, setQuery } from '../router.js';
import { keysetPager } from './pager.js';
import { errorRate, inferences, latency, populationStabilityIndex, psiValue, toPoints } from './telemetry-data.js';

const WINDOWS = [
  { key: '1h', label: 'last hour', seconds: 3600, bucket: 60 },
  { key: '6h', label: 'last 6 hours', seconds: 6 * 3600, bucket: 300 },
  { key: '24h', label: 'last 24 hours', seconds: 86_400, bucket: 900 },
  { key: '7d', label: 'last 7 days', seconds: 7 * 86_400, bucket: 3600 },
];
/** Versions drawn at once; more lines than this stop being readable. */
const MAX_VERSIONS = 4;

/** Model health: models list, or for one model per-version latency/error/PSI over time and canary vs baseline. */
export async function render(view, params, ctx) {
  if (!params.model) return renderList(view);
  return renderModel(view, params.model, ctx);
}

async function renderList(view) {
  const pager = keysetPager({
    pageLabel: 'models',
    load: (after) => api.get('models', { after, limit: 50 }),
    renderItems: (items) =>
      table(
        ['Model', 'Latest version', 'Versions', 'Created'],
        items.map((m) =>
          h(
            'tr',
            { dataset: { model: m.name } },
            h('td', h('a', { href: link('models', m.name) }, m.name), m.description ? h('div.muted.small', m.description) : null),
            h('td', m.latestVersion ? h('code', m.latestVersion) : '—'),
            h('td.num', fmtInt(m.versionCount)),
            h('td', fmtAgo(m.createdAt)),
          ),
        ),
        { empty: 'No model registered yet.' },
      ),
  });
  mount(
    view,
    h('div.page-head', h('div', h('h1', 'Model health'), h('p.muted', 'Pick a model to see its versions side by side.'))),
    h('section.panel', pager.element),
  );
  await pager.reload();
}

async function renderModel(view, model, ctx) {
  const windowKey = WINDOWS.some((w) => w.key === ctx.query.get('window')) ? ctx.query.get('window') : '1h';
  const select = h(
    'select',
    { name: 'window', 'aria-label': 'Time window' },
    WINDOWS.map((w) => h('option', { value: w.key }, w.label)),
  );
  select.value = windowKey;
  const body = h('div', h('p.muted', 'Loading telemetry…'));
  mount(
    view,
    h(
      'div.page-head',
      h('div', h('p.muted.small', h('a', { href: '#/models' }, '← Models')), h('h1', model), h('p.muted', 'Latency, error rate and drift per version.')),
      select,
    ),
    body,
  );

  let charts = [];
  const destroyCharts = () => {
    for (const c of charts) c.destroy();
    charts = [];
  };

  const load = async () => {
    const w = WINDOWS.find((x) => x.key === select.value) ?? WINDOWS[0];
    const to = new Date();
    const from = new Date(to.getTime() - w.seconds * 1000);
    const range = { from: from.toISOString(), to: to.toISOString() };
    const seriesOf = (version, cohort) =>
      api
        .get(`telemetry/models/${encodeURIComponent(model)}/versions/${encodeURIComponent(version)}`, { ...range, bucket: w.bucket, cohort })
        .catch(() => undefined);
    try {
      const [summary, running, paused] = await Promise.all([
        api.get(`telemetry/models/${encodeURIComponent(model)}`, range),
        api.get('rollouts', { model, state: 'running', limit: 1 }).catch(() => ({ items: [] })),
        api.get('rollouts', { model, state: 'paused', limit: 1 }).catch(() => ({ items: [] })),
      ]);
      const versions = [...(summary.versions ?? [])].sort((a, b) => compareVersions(b.version, a.version));
      const rollout = running.items?.[0] ?? paused.items?.[0];
      let cohorts;
      let lines;
      if (rollout) {
        // Canary: the rollout's version; baseline: the version it replaces, on devices outside the rollout.
        cohorts = await api.get(`telemetry/rollouts/${encodeURIComponent(rollout.id)}`, range).catch(() => undefined);
        const baselineVersion = cohorts?.baselineVersion ?? rollout.baselineVersion ?? versions.find((v) => v.version !== rollout.version)?.version;
        const [canary, baseline] = await Promise.all([seriesOf(rollout.version), baselineVersion ? seriesOf(baselineVersion, 'fleet') : undefined]);
        lines = [
          { label: `canary ${rollout.version}`, version: rollout.version, answer: canary },
          baselineVersion ? { label: `baseline ${baselineVersion}`, version: baselineVersion, answer: baseline, isBaseline: true } : null,
        ].filter(Boolean);
      } else {
        const shown = versions.slice(0, MAX_VERSIONS);
        const answers = await Promise.all(shown.map((v) => seriesOf(v.version)));
        // The most-used version is the reference for drift when no rollout defines a baseline.
        const busiest = [...shown].sort((a, b) => (inferences(b.stats) ?? 0) - (inferences(a.stats) ?? 0))[0]?.version;
        lines = shown.map((v, i) => ({ label: v.version, version: v.version, answer: answers[i], isBaseline: v.version === busiest }));
      }
      if (!ctx.isCurrent()) return;
      destroyCharts();
      charts = await draw(body, versions, lines, rollout, cohorts, { xMin: from.getTime(), xMax: to.getTime() });
    } catch (err) {
      if (ctx.isCurrent()) mount(body, notice(`Could not load telemetry: ${err.message}`, 'error'));
    }
  };

  select.addEventListener('change', () => {
    setQuery({ window: select.value });
    void load();
  });
  await load();
  const timer = setInterval(() => void load(), 30_000);
  return () => {
    clearInterval(timer);
    destroyCharts();
  };
}

async function draw(body, versions, lines, rollout, cohorts, xRange) {
  if (versions.length === 0) {
    mount(body, h('section.panel', h('p.muted', 'No telemetry in this window. Devices send one aggregate per interval per active model version.')));
    return [];
  }
  lines.forEach((line, i) => (line.color = paletteColor(i)));
  const reference = lines.find((l) => l.isBaseline)?.answer?.totals?.predictions;
  const canvases = {
    latency: h('canvas', { 'aria-label': 'Latency p50 and p95' }),
    errors: h('canvas', { 'aria-label': 'Error rate' }),
    psi: h('canvas', { 'aria-label': 'Drift (PSI)' }),
  };
  const chartPanel = (title, canvas, note) => h('section.panel', h('h2', title), note ? h('p.muted.small', note) : null, h('div.chart-box', canvas));
  mount(
    body,
    versionTable(versions),
    rollout ? cohortPanel(rollout, cohorts) : null,
    h(
      'div.chart-grid',
      chartPanel(rollout ? 'Latency: canary vs baseline (ms)' : 'Latency (ms)', canvases.latency, 'Solid: p50 · dashed: p95 (from summed latency buckets)'),
      chartPanel(rollout ? 'Error rate: canary vs baseline' : 'Error rate', canvases.errors),
      chartPanel('Drift (PSI)', canvases.psi, 'Prediction distribution per interval against the baseline over the window; above 0.2 is a significant shift'),
    ),
  );
  const series = (line) => line.answer?.series ?? [];
  return Promise.all([
    lineChart(
      canvases.latency,
      lines.flatMap((l) => [
        { label: `${l.label} p50`, color: l.color, points: toPoints(series(l), (p) => latency(p, 'p50')) },
        { label: `${l.label} p95`, color: l.color, dashed: true, points: toPoints(series(l), (p) => latency(p, 'p95')) },
      ]),
      { yFormat: (v) => fmtNum(v, 0), yMin: 0, ...xRange },
    ),
    lineChart(
      canvases.errors,
      lines.map((l) => ({ label: l.label, color: l.color, points: toPoints(series(l), errorRate) })),
      { yFormat: (v) => fmtPercent(v, 1), yMin: 0, ...xRange },
    ),
    lineChart(
      canvases.psi,
      lines.map((l) => ({
        label: l.label,
        color: l.color,
        points: reference ? toPoints(series(l), (p) => populationStabilityIndex(reference, p.predictions)) : [],
      })),
      { yFormat: (v) => fmtNum(v, 2), yMin: 0, ...xRange },
    ),
  ]);
}

function versionTable(versions) {
  return h(
    'section.panel',
    h('h2', 'Versions in this window'),
    table(
      [
        'Version',
        { label: 'Inferences', num: true },
        { label: 'Error rate', num: true },
        { label: 'p50 ms', num: true },
        { label: 'p95 ms', num: true },
        { label: 'p99 ms', num: true },
        { label: 'PSI', num: true },
      ],
      versions.map((v) =>
        h(
          'tr',
          { dataset: { version: v.version } },
          h('td', h('code', v.version)),
          h('td.num', fmtInt(inferences(v.stats))),
          h('td.num', fmtPercent(errorRate(v.stats), 2)),
          h('td.num', fmtNum(latency(v.stats, 'p50'), 1)),
          h('td.num', fmtNum(latency(v.stats, 'p95'), 1)),
          h('td.num', fmtNum(latency(v.stats, 'p99'), 1)),
          h(
            'td.num',
            { title: v.psi?.reference ? `against its ${v.psi.reference} reference distribution` : 'no reference distribution yet' },
            fmtNum(psiValue(v.psi), 3),
          ),
        ),
      ),
    ),
  );
}

/** Per cohort of the rollout: candidate waves next to the baseline (devices outside the rollout). */
function cohortPanel(rollout, cohorts) {
  const list = [...(cohorts?.cohorts ?? [])].sort((a, b) => (a.role === b.role ? (a.wave ?? 0) - (b.wave ?? 0) : a.role === 'candidate' ? -1 : 1));
  return h(
    'section.panel',
    h('h2', 'Canary vs baseline · ', h('a', { href: link('rollouts', rollout.id) }, `rollout to ${rollout.version}`)),
    list.length === 0
      ? h('p.muted', 'No telemetry from the rollout cohorts yet.')
      : table(
          [
            'Cohort',
            'Version',
            { label: 'Inferences', num: true },
            { label: 'Error rate', num: true },
            { label: 'p50 ms', num: true },
            { label: 'p95 ms', num: true },
            { label: 'PSI vs baseline ref.', num: true },
          ],
          list.map((c) =>
            h(
              'tr',
              { dataset: { cohort: c.cohort } },
              h(
                'td',
                c.role !== 'candidate'
                  ? 'baseline'
                  : c.version === rollout.version
                    ? `canary · wave ${waveNo(c.wave)}`
                    : `wave ${waveNo(c.wave)} · not updated yet`,
              ),
              h('td', h('code', c.version)),
              h('td.num', fmtInt(inferences(c.stats))),
              h('td.num', fmtPercent(errorRate(c.stats), 2)),
              h('td.num', fmtNum(latency(c.stats, 'p50'), 1)),
              h('td.num', fmtNum(latency(c.stats, 'p95'), 1)),
              h('td.num', fmtNum(c.psi?.vsBaselineReference, 3)),
            ),
          ),
        ),
  );
}

// chart.js is served by the control plane from its own node_modules (no CDN) and only loaded by
// pages that draw charts.

let loading;
export function loadChartJs() {
  if (window.Chart) return Promise.resolve(window.Chart);
  loading ??= new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = '/ui/vendor/chart.umd.js';
    script.onload = () => resolve(window.Chart);
    script.onerror = () => {
      loading = undefined;
      reject(new Error('could not load chart.js'));
    };
    document.head.append(script);
  });
  return loading;
}

const timeLabel = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

const MINUTE = 60_000;
const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440].map((m) => m * MINUTE);
/** A tick spacing of whole minutes/hours giving about `count` ticks over the range. */
function niceStep(range, count = 6) {
  return STEPS.find((s) => range / s <= count) ?? STEPS[STEPS.length - 1];
}

function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

/**
 * A time-series line chart on a linear x axis of epoch milliseconds (no date adapter needed).
 * series: [{ label, color, dashed?, points: [{ x: ms, y }] }]; xMin/xMax (ms) pin the axis to the queried window.
 */
export async function lineChart(canvas, series, { yFormat = (v) => String(v), yMin, xMin, xMax } = {}) {
  const Chart = await loadChartJs();
  const text = cssVar('--muted', '#5f6b7a');
  const grid = cssVar('--border', '#dde1e7');
  const chart = new Chart(canvas, {
    type: 'line',
    data: {
      datasets: series.map((s) => ({
        label: s.label,
        data: s.points,
        borderColor: s.color,
        backgroundColor: s.color,
        borderDash: s.dashed ? [5, 4] : undefined,
        borderWidth: 2,
        pointRadius: s.points.length > 40 ? 0 : 2,
        tension: 0.2,
        spanGaps: true,
      })),
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      parsing: false,
      interaction: { mode: 'nearest', axis: 'x', intersect: false },
      scales: {
        x: {
          type: 'linear',
          min: xMin,
          max: xMax,
          ticks: {
            color: text,
            callback: (v) => timeLabel(v),
            stepSize: xMin !== undefined && xMax !== undefined ? niceStep(xMax - xMin) : undefined,
            maxTicksLimit: 8,
          },
          grid: { color: grid },
        },
        y: { min: yMin, ticks: { color: text, callback: (v) => yFormat(v) }, grid: { color: grid } },
      },
      plugins: {
        legend: { labels: { color: text, boxWidth: 24, usePointStyle: true, pointStyle: 'line' } },
        tooltip: {
          callbacks: {
            title: (items) => (items[0] ? new Date(items[0].parsed.x).toLocaleString() : ''),
            label: (item) => `${item.dataset.label}: ${yFormat(item.parsed.y)}`,
          },
        },
      },
    },
  });
  // Lets tests (and anything else) tell a drawn chart from an empty canvas.
  canvas.dataset.chart = 'ready';
  return chart;
}

/**
 * Sluice status page: polls the service's JSON API and draws live charts with uPlot (loaded before
 * this module as the global `uPlot`). No framework and no build step; every value from the service is
 * put in the page with `textContent`, never as HTML.
 *
 * - `/api/batches?after=<id>` every second: per-batch input rate, processing time, scheduling delay
 *   and total delay (the batches are kept here, the newest MAX_BATCHES of them);
 * - `/api/status` every 2 s: the summary, the partition table and, kept here as a time series, the
 *   lag of every partition;
 * - `/api/errors` every 2 s: failed batches, dead letters by code, restarts and rebalances.
 *
 * A service with SLUICE_HTTP_TOKEN answers the API only with `Authorization: Bearer <token>`: the page
 * takes the token from its URL fragment (`/#token=…`, which the browser never sends to the server) and
 * removes it from the address bar, or asks for it once the API answers 401; it keeps it in
 * sessionStorage (this tab only) and sends it with every API call.
 *
 * For tests and scripts, `<body>` carries `data-batches`, `data-records`, `data-lag-points` and
 * `data-partitions` with what the page currently shows.
 */

/* global document, window, Node, getComputedStyle, fetch, setTimeout, setInterval, requestAnimationFrame, cancelAnimationFrame, uPlot, sessionStorage, history, location, URLSearchParams */

const BATCH_POLL_MS = 1000;
const STATUS_POLL_MS = 2000;
const ERRORS_POLL_MS = 2000;
const MAX_BATCHES = 600;
const MAX_LAG_POINTS = 450; // 15 minutes at one sample per 2 s
const RECENT_BATCH_ROWS = 12;
const CHART_HEIGHT = 190;
const LAG_CHART_HEIGHT = 220;

const model = {
  /** @type {Array<Record<string, any>>} batches, oldest first */
  batches: [],
  lastBatchId: undefined,
  /** @type {Record<string, any> | undefined} */
  status: undefined,
  /** @type {Record<string, any> | undefined} */
  errors: undefined,
  lag: { times: [], byKey: new Map() },
  failing: new Set(),
  lastUpdate: 0,
};

// ---------------------------------------------------------------------------------------------------
// Formatting

const intFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1, minimumFractionDigits: 1 });
const timeFormat = new Intl.DateTimeFormat('en-GB', {
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hour12: false,
});

const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

function fmtCount(n) {
  return isNum(n) ? intFormat.format(n) : '—';
}

function fmtRate(n) {
  if (!isNum(n)) return '—';
  return n >= 100 || n === 0 ? intFormat.format(n) : oneDecimal.format(n);
}

function fmtMs(ms) {
  if (!isNum(ms)) return '—';
  if (ms < 1000) return `${intFormat.format(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  return fmtDuration(ms);
}

function fmtDuration(ms) {
  if (!isNum(ms)) return '—';
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const pad = (n) => String(n).padStart(2, '0');
  if (d > 0) return `${d}d ${pad(h)}h ${pad(m)}m`;
  if (h > 0) return `${h}h ${pad(m)}m ${pad(sec)}s`;
  if (m > 0) return `${m}m ${pad(sec)}s`;
  return `${sec}s`;
}

function plural(n, word) {
  return `${fmtCount(n)} ${word}${n === 1 ? '' : 's'}`;
}

function fmtBytes(bytes) {
  if (!isNum(bytes)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? intFormat.format(v) : v.toFixed(1)} ${units[i]}`;
}

function fmtTime(epochMs) {
  return isNum(epochMs) ? timeFormat.format(new Date(epochMs)) : '—';
}

/** `HH:MM:SS.mmm`, for stream times where milliseconds matter. */
function fmtTimeMs(epochMs) {
  if (!isNum(epochMs)) return '—';
  return `${fmtTime(epochMs)}.${String(Math.floor(((epochMs % 1000) + 1000) % 1000)).padStart(3, '0')}`;
}

// ---------------------------------------------------------------------------------------------------
// DOM helpers

const byId = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** Creates an element; `children` are nodes or strings (set as text). */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = String(v);
    else if (k === 'title') node.title = String(v);
    else node.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function setText(id, text, title) {
  const node = byId(id);
  if (node.textContent !== text) node.textContent = text;
  if (title !== undefined) node.title = title;
}

/** A small stat line: `avg <strong>x</strong> · p95 y · max z`. */
function setStat(id, parts) {
  const node = byId(id);
  node.replaceChildren();
  parts.forEach(([label, value, strong], i) => {
    if (i > 0) node.append(' · ');
    node.append(`${label} `);
    node.append(strong ? el('strong', {}, value) : value);
  });
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// ---------------------------------------------------------------------------------------------------
// Charts

/** Colours for many series (lag per partition), readable on light and dark backgrounds. */
const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#8cd17d',
  '#499894',
  '#d37295',
];

/** @type {Record<string, any>} */
const charts = {};

/** Time ticks: whole seconds and up, as local `HH:MM:SS`. */
const TIME_INCREMENTS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400];

/** Value ticks: whole numbers (records, milliseconds), 1-2-5 steps. */
const WHOLE_INCREMENTS = Array.from({ length: 13 }, (_, e) => [1, 2, 5].map((m) => m * 10 ** e)).flat();

function axisOptions(format) {
  const muted = cssVar('--muted');
  const grid = cssVar('--grid');
  const font = `11px ${cssVar('--font') || 'sans-serif'}`;
  const common = { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, font };
  const x = {
    ...common,
    space: 80,
    incrs: TIME_INCREMENTS,
    values: (_u, splits) => splits.map((v) => fmtTime(v * 1000)),
  };
  const y = { ...common, size: 64, incrs: WHOLE_INCREMENTS, values: (_u, splits) => splits.map((v) => format(v)) };
  return [x, y];
}

/** New data; unless the pointer is on the chart, the legend shows the latest values. */
function setChartData(chart, data) {
  chart.setData(data);
  const n = data[0].length;
  if (n > 0 && chart.cursor.idx == null) chart.setLegend({ idx: n - 1 });
}

/** Y from zero to a little above the largest value (uPlot's default would zoom into the noise). */
function zeroBasedRange(_u, _min, max) {
  const top = isNum(max) && max > 0 ? max : 1;
  return [0, top * 1.08];
}

function makeChart(id, series, format, height = CHART_HEIGHT) {
  const container = byId(id);
  const opts = {
    width: Math.max(200, container.clientWidth),
    height,
    cursor: { drag: { x: false, y: false }, points: { size: 6 } },
    legend: { live: true },
    scales: { x: { time: true }, y: { range: zeroBasedRange } },
    axes: axisOptions(format),
    series: [{ label: 'Time', value: (_u, v) => (v == null ? '—' : fmtTime(v * 1000)) }, ...series],
  };
  const data = [[], ...series.map(() => [])];
  container.replaceChildren();
  const chart = new uPlot(opts, data, container);
  chart.container = container;
  return chart;
}

function line(label, color, format, extra = {}) {
  return {
    label,
    stroke: color,
    width: 1.5,
    fill: `${color}1f`,
    value: (_u, v) => (v == null ? '—' : format(v)),
    ...extra,
  };
}

function batchChartSeries() {
  const [c1, c2, c3, c4, muted, bad] = ['--c1', '--c2', '--c3', '--c4', '--muted', '--bad'].map(cssVar);
  const failed = {
    label: 'failed',
    stroke: bad,
    fill: bad,
    paths: () => null,
    points: { show: true, size: 8, stroke: bad, fill: bad },
    value: (_u, v) => (v == null ? '—' : fmtMs(v)),
  };
  const interval = {
    label: 'batch interval',
    stroke: muted,
    width: 1,
    dash: [5, 5],
    points: { show: false },
    value: (_u, v) => (v == null ? '—' : fmtMs(v)),
  };
  return {
    rate: [line('records/s', c1, fmtRate)],
    processing: [line('processing', c2, fmtMs), interval, failed],
    scheduling: [line('scheduling delay', c3, fmtMs)],
    total: [line('total delay', c4, fmtMs)],
  };
}

function createBatchCharts() {
  const s = batchChartSeries();
  charts.rate = makeChart('chart-rate', s.rate, fmtRate);
  charts.processing = makeChart('chart-processing', s.processing, fmtMs);
  charts.scheduling = makeChart('chart-scheduling', s.scheduling, fmtMs);
  charts.total = makeChart('chart-total', s.total, fmtMs);
}

function partitionKey(p) {
  return `${p.topic}\u0000${p.partition}`;
}

/** Short series labels: `p3` for a single input topic, `repartition p3`, else `topic p3`. */
function partitionLabel(topic, partition) {
  const status = model.status;
  if (status && topic === status.repartitionTopic) return `repartition p${partition}`;
  if (status && Array.isArray(status.inputTopics) && status.inputTopics.length === 1) return `p${partition}`;
  return `${topic} p${partition}`;
}

function createLagChart() {
  const keys = [...model.lag.byKey.keys()];
  const repartition = model.status?.repartitionTopic;
  const series = keys.map((key, i) => {
    const [topic, partition] = key.split('\u0000');
    const color = PALETTE[i % PALETTE.length];
    return {
      label: partitionLabel(topic, partition),
      stroke: color,
      width: 1.5,
      ...(topic === repartition ? { dash: [6, 3] } : {}),
      points: { show: false },
      value: (_u, v) => (v == null ? '—' : fmtCount(v)),
    };
  });
  charts.lag?.destroy();
  charts.lag = makeChart('chart-lag', series, fmtCount, LAG_CHART_HEIGHT);
  charts.lagKeys = keys.join('\u0001');
}

function destroyCharts() {
  for (const name of ['rate', 'processing', 'scheduling', 'total', 'lag']) {
    charts[name]?.destroy();
    delete charts[name];
  }
  delete charts.lagKeys;
}

function resizeCharts() {
  for (const name of ['rate', 'processing', 'scheduling', 'total', 'lag']) {
    const chart = charts[name];
    if (!chart) continue;
    const width = Math.max(200, chart.container.clientWidth);
    if (width !== chart.width) chart.setSize({ width, height: chart.height });
  }
}

// ---------------------------------------------------------------------------------------------------
// Batch statistics

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

function summarize(values) {
  const finite = values.filter(isNum);
  if (finite.length === 0) return { avg: NaN, p95: NaN, max: NaN, last: NaN };
  const sorted = [...finite].sort((a, b) => a - b);
  return {
    avg: finite.reduce((a, b) => a + b, 0) / finite.length,
    p95: percentile(sorted, 0.95),
    max: sorted[sorted.length - 1],
    last: finite[finite.length - 1],
  };
}

function intervalMs() {
  const ms = model.status?.batchIntervalMs;
  if (isNum(ms) && ms > 0) return ms;
  // Before the first status: the most common spacing between batches.
  const b = model.batches;
  return b.length > 1 ? Math.max(1, b[b.length - 1].scheduledAt - b[b.length - 2].scheduledAt) : 1000;
}

/**
 * Chart columns from the batches. Where no batch ran for a few intervals (no records, or a stall) the
 * lines break instead of being drawn across the gap as if batches had run there.
 */
function batchColumns() {
  const interval = intervalMs();
  const x = [];
  const rate = [];
  const processing = [];
  const intervalLine = [];
  const failed = [];
  const scheduling = [];
  const total = [];
  let previous;
  const push = (t, r, p, f, s, d) => {
    x.push(t / 1000);
    rate.push(r);
    processing.push(p);
    intervalLine.push(interval);
    failed.push(f);
    scheduling.push(s);
    total.push(d);
  };
  for (const b of model.batches) {
    if (previous && b.scheduledAt - previous.scheduledAt > 3 * interval) {
      push(previous.scheduledAt + interval, null, null, null, null, null);
    }
    push(
      b.scheduledAt,
      inputOf(b) / (interval / 1000),
      b.processingMs,
      b.outcome === 'failed' ? b.processingMs : null,
      b.schedulingDelayMs,
      b.totalDelayMs,
    );
    previous = b;
  }
  return { x, rate, processing, intervalLine, failed, scheduling, total };
}

/** Records read from the input topics (older services reported only the total). */
function inputOf(batch) {
  return batch.inputRecords ?? batch.records;
}

function renderBatches() {
  const cols = batchColumns();
  const b = model.batches;
  if (!charts.rate) createBatchCharts();
  setChartData(charts.rate, [cols.x, cols.rate]);
  setChartData(charts.processing, [cols.x, cols.processing, cols.intervalLine, cols.failed]);
  setChartData(charts.scheduling, [cols.x, cols.scheduling]);
  setChartData(charts.total, [cols.x, cols.total]);

  const interval = intervalMs();
  const rate = summarize(b.map((x) => inputOf(x) / (interval / 1000)));
  const processing = summarize(b.map((x) => x.processingMs));
  const scheduling = summarize(b.map((x) => x.schedulingDelayMs));
  const total = summarize(b.map((x) => x.totalDelayMs));
  setStat('stat-rate', [
    ['avg', `${fmtRate(rate.avg)} records/s`, true],
    ['max', fmtRate(rate.max)],
  ]);
  for (const [id, s] of [
    ['stat-processing', processing],
    ['stat-scheduling', scheduling],
    ['stat-total', total],
  ]) {
    setStat(id, [
      ['avg', fmtMs(s.avg), true],
      ['p95', fmtMs(s.p95)],
      ['max', fmtMs(s.max)],
    ]);
  }

  const records = b.reduce((sum, x) => sum + x.records, 0);
  const failedCount = b.filter((x) => x.outcome === 'failed').length;
  setStat('stat-batches', [
    ['last', `${fmtCount(b.length)} batches`],
    ['failed', fmtCount(failedCount)],
  ]);
  document.body.dataset.batches = String(b.length);
  document.body.dataset.records = String(records);
  renderBatchTable();
  renderHeadline();
}

function renderBatchTable() {
  const tbody = byId('batches').tBodies[0];
  const rows = model.batches
    .slice(-RECENT_BATCH_ROWS)
    .reverse()
    .map((b) => {
      const ok = b.outcome !== 'failed';
      return el(
        'tr',
        { class: ok ? undefined : 'failed', title: ok ? undefined : b.error },
        el('td', { class: 'num' }, `#${b.id}`),
        el('td', {}, fmtTimeMs(b.scheduledAt)),
        el('td', { class: 'num' }, fmtCount(b.records)),
        el('td', { class: 'num' }, fmtCount(b.outputs)),
        el('td', { class: 'num' }, fmtCount(b.late)),
        el('td', { class: 'num' }, fmtCount(b.deadLettered)),
        el('td', { class: 'num' }, fmtMs(b.schedulingDelayMs)),
        el('td', { class: 'num' }, fmtMs(b.processingMs)),
        el('td', { class: 'num' }, fmtMs(b.totalDelayMs)),
        el('td', { class: ok ? 'status-ok' : 'status-failed' }, ok ? 'ok' : 'failed'),
      );
    });
  if (rows.length === 0) rows.push(el('tr', {}, el('td', { class: 'empty', colspan: 10 }, 'No batches yet.')));
  tbody.replaceChildren(...rows);
}

function renderHeadline() {
  const node = byId('headline');
  const s = model.status;
  const b = model.batches;
  if (!s) return;
  const records = b.reduce((sum, x) => sum + x.records, 0);
  const lastId = b.length > 0 ? b[b.length - 1].id : undefined;
  node.replaceChildren(
    'Micro-batches every ',
    el('strong', {}, fmtMs(s.batchIntervalMs)),
    ' · running for ',
    el('strong', {}, fmtDuration(s.uptimeMs)),
    ` since ${new Date(s.startedAt).toLocaleString('en-GB')} · `,
    el('strong', {}, fmtCount(lastId ?? 0)),
    ' batches so far; the charts show the last ',
    el('strong', {}, fmtCount(b.length)),
    ' (',
    el('strong', {}, fmtCount(records)),
    ' records)',
  );
}

// ---------------------------------------------------------------------------------------------------
// Status: summary, partitions, lag time series

function recordLag(status) {
  const lag = model.lag;
  const t = (status.now ?? Date.now()) / 1000;
  const partitions = Array.isArray(status.partitions) ? status.partitions : [];
  const seen = new Set();
  for (const p of partitions) {
    const key = partitionKey(p);
    seen.add(key);
    if (!lag.byKey.has(key)) lag.byKey.set(key, new Array(lag.times.length).fill(null));
  }
  lag.times.push(t);
  const byKey = new Map(partitions.map((p) => [partitionKey(p), p.lag]));
  for (const [key, values] of lag.byKey) values.push(seen.has(key) && isNum(byKey.get(key)) ? byKey.get(key) : null);
  if (lag.times.length > MAX_LAG_POINTS) {
    const drop = lag.times.length - MAX_LAG_POINTS;
    lag.times.splice(0, drop);
    for (const values of lag.byKey.values()) values.splice(0, drop);
  }
  // Partitions no longer assigned and without a value in the window disappear from the chart.
  for (const [key, values] of lag.byKey) if (!seen.has(key) && values.every((v) => v == null)) lag.byKey.delete(key);
  // Stable order: by topic (inputs first), then partition.
  lag.byKey = new Map([...lag.byKey].sort(([a], [b]) => comparePartitionKeys(a, b)));
}

function comparePartitionKeys(a, b) {
  const [ta, pa] = a.split('\u0000');
  const [tb, pb] = b.split('\u0000');
  const rep = model.status?.repartitionTopic;
  if (ta !== tb) return (ta === rep) - (tb === rep) || ta.localeCompare(tb);
  return Number(pa) - Number(pb);
}

function renderLag() {
  const keys = [...model.lag.byKey.keys()].join('\u0001');
  if (!charts.lag || charts.lagKeys !== keys) createLagChart();
  setChartData(charts.lag, [model.lag.times, ...model.lag.byKey.values()]);
  const totals = model.lag.times.map((_t, i) => {
    let sum = 0;
    for (const values of model.lag.byKey.values()) sum += values[i] ?? 0;
    return sum;
  });
  const s = summarize(totals);
  setStat('stat-lag', [
    ['total lag now', fmtCount(s.last), true],
    ['max', fmtCount(s.max)],
  ]);
  document.body.dataset.lagPoints = String(model.lag.times.length);
}

function pill(text, kind) {
  const node = byId('state-pill');
  node.textContent = text;
  node.className = `pill pill-${kind}`;
}

function renderStatus() {
  const s = model.status;
  if (!s) return;
  const health = s.health ?? {};
  const live = health.live?.ok !== false;
  const ready = health.ready?.ok === true;
  document.title = `${s.job} · Sluice`;
  setText('job-name', s.job ?? '—');
  if (!live) pill(`failing: ${health.live?.reason ?? 'unknown'}`, 'bad');
  else if (s.state === 'running' && ready) pill('running · ready', 'ok');
  else if (s.state === 'running') pill(`running · not ready`, 'warn');
  else pill(String(s.state ?? 'unknown'), s.state === 'stopped' ? 'bad' : 'warn');

  setText('s-group', s.groupId ?? '—');
  setText('s-state', String(s.state ?? '—'));
  const healthText = [
    live ? 'live' : `failing (${health.live?.reason ?? '?'})`,
    ready ? 'ready' : `not ready (${health.ready?.reason ?? '?'})`,
  ].join(' · ');
  setText('s-health', healthText);
  byId('s-health').className = !live ? 'status-failed' : ready ? 'status-ok' : '';
  setText('s-interval', fmtMs(s.batchIntervalMs));
  setText('s-uptime', `${fmtDuration(s.uptimeMs)}`, `started ${new Date(s.startedAt).toISOString()}`);
  setText('s-inputs', Array.isArray(s.inputTopics) ? s.inputTopics.join(', ') : '—');
  setText('s-output', s.outputTopic ?? '—');
  setText('s-dlq', s.dlqTopic ?? '—');
  setText('s-repartition', s.repartitionTopic ?? 'none (no re-keying)');
  byId('caption-rate').title = s.repartitionTopic
    ? 'Input records ÷ batch interval. The repartition topic (stage 2 of a re-keyed job) is not counted again.'
    : 'Input records ÷ batch interval.';
  setText('caption-rate', 'Records per second read from the input topics in each batch (records ÷ batch interval).');
  setText('s-workers', `${plural(s.workers, 'thread')} · ${plural(s.workerRestarts, 'restart')}`);
  byId('s-workers').className = s.workerRestarts > 0 ? 'status-failed' : '';
  const buffer = s.buffer ?? {};
  setText('s-buffer', `${fmtCount(buffer.records)} records · ${fmtBytes(buffer.bytes)}`);
  setText('s-paused', fmtCount(buffer.paused));
  byId('s-paused').className = buffer.paused > 0 ? 'status-failed' : '';
  const partitions = Array.isArray(s.partitions) ? s.partitions : [];
  const totalLag = partitions.reduce((sum, p) => sum + (isNum(p.lag) ? p.lag : 0), 0);
  setText('s-partitions', `${fmtCount(partitions.length)} assigned`);
  setText('s-lag', `${fmtCount(totalLag)} records`);
  document.body.dataset.partitions = String(partitions.length);
  renderPartitionTable(partitions, s.now ?? Date.now());
  renderHeadline();
}

function renderPartitionTable(partitions, now) {
  const tbody = byId('partitions').tBodies[0];
  const sorted = [...partitions].sort((a, b) => comparePartitionKeys(partitionKey(a), partitionKey(b)));
  const maxLag = Math.max(1, ...sorted.map((p) => (isNum(p.lag) ? p.lag : 0)));
  const rows = sorted.map((p) => {
    const bar = el('span', { class: 'lag-bar' }, el('span'));
    /** @type {HTMLElement} */ (bar.firstChild).style.width = `${isNum(p.lag) ? (100 * p.lag) / maxLag : 0}%`;
    const behind = isNum(p.streamTime) ? now - p.streamTime : NaN;
    return el(
      'tr',
      {},
      el(
        'td',
        { class: 'mono', title: p.topic },
        p.topic === model.status?.repartitionTopic ? `${p.topic} ↻` : p.topic,
        p.restoring
          ? el(
              'span',
              { class: 'muted restoring', title: 'its state is being read back from the changelog' },
              `  restoring ${fmtCount(p.restoring.records)} / ${fmtCount(p.restoring.end)}`,
            )
          : null,
      ),
      el('td', { class: 'num' }, String(p.partition)),
      el('td', { class: 'num' }, fmtCount(p.position)),
      el('td', { class: 'num' }, fmtCount(p.highWatermark)),
      el('td', { class: 'num' }, el('span', { class: 'lag-cell' }, fmtCount(p.lag), bar)),
      el(
        'td',
        {
          title: isNum(p.streamTime) ? new Date(p.streamTime).toISOString() : 'no stream time for this partition (yet)',
        },
        fmtTimeMs(p.streamTime),
        isNum(behind)
          ? el(
              'span',
              { class: 'muted' },
              `  ${behind >= 0 ? '' : '+'}${fmtMs(Math.abs(behind))} ${behind >= 0 ? 'behind' : 'ahead'}`,
            )
          : null,
      ),
      el('td', { class: 'num' }, fmtCount(p.buffered)),
    );
  });
  if (rows.length === 0) rows.push(el('tr', {}, el('td', { class: 'empty', colspan: 7 }, 'No partitions assigned.')));
  tbody.replaceChildren(...rows);
}

// ---------------------------------------------------------------------------------------------------
// Errors

function renderErrors() {
  const e = model.errors;
  if (!e) return;
  const counter = (label, value, alert) =>
    el(
      'div',
      { class: alert ? 'counter alert' : 'counter' },
      el('span', { class: 'value' }, fmtCount(value)),
      el('span', { class: 'label' }, label),
    );
  byId('error-counters').replaceChildren(
    counter('failed batches', e.batches?.failed, e.batches?.failed > 0),
    counter('dead letters', e.deadLetters?.total, false),
    counter('worker restarts', e.workerRestarts, e.workerRestarts > 0),
    counter('rebalances', e.rebalances, false),
    counter('partition resets', e.partitionResets, e.partitionResets > 0),
  );

  const codes = e.deadLetters?.byCode ?? [];
  const dead = byId('dead-letters');
  if (codes.length === 0) {
    dead.className = 'muted small';
    dead.replaceChildren('None since start.');
  } else {
    const max = Math.max(1, ...codes.map((c) => c.count));
    dead.className = 'codes';
    dead.replaceChildren(
      ...codes.flatMap((c) => {
        const bar = el('span', { class: 'bar' }, el('span'));
        /** @type {HTMLElement} */ (bar.firstChild).style.width = `${(100 * c.count) / max}%`;
        return [el('span', { class: 'mono' }, c.code), bar, el('span', { class: 'count' }, fmtCount(c.count))];
      }),
    );
  }

  const list = byId('failed-batches');
  const failed = e.failedBatches ?? [];
  if (failed.length === 0) {
    list.replaceChildren(el('li', { class: 'none' }, 'No failed batches in the history.'));
  } else {
    list.replaceChildren(
      ...failed.map((f) =>
        el(
          'li',
          {},
          el(
            'div',
            { class: 'meta' },
            `${fmtTime(f.startedAt)} · batch #${f.id} · ${fmtCount(f.records)} records · ${fmtMs(f.processingMs)}`,
          ),
          el('div', { class: 'error', title: f.error }, f.error),
        ),
      ),
    );
  }
}

// ---------------------------------------------------------------------------------------------------
// Polling

function setConnection(source, ok, reason) {
  if (ok) model.failing.delete(source);
  else model.failing.add(source);
  const banner = byId('banner');
  if (model.failing.size === 0) {
    banner.hidden = true;
    model.lastUpdate = Date.now();
    setText('updated', `updated ${fmtTime(model.lastUpdate)}`);
  } else {
    banner.hidden = false;
    banner.textContent = `Cannot reach the service (${reason}); retrying…`;
    pill('unreachable', 'bad');
  }
}

// ---------------------------------------------------------------------------------------------------
// Access token (SLUICE_HTTP_TOKEN)

const TOKEN_KEY = 'sluice-token';

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
  } catch {
    return undefined; // storage disabled: the token lives only in this page
  }
}

let pageToken = storedToken();

function keepToken(token) {
  pageToken = token || undefined;
  try {
    if (pageToken) sessionStorage.setItem(TOKEN_KEY, pageToken);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // kept in memory only
  }
}

/** `/#token=…`: taken, then removed from the address bar (and from the history entry). */
function takeTokenFromFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get('token');
  if (token === null) return;
  keepToken(token);
  params.delete('token');
  const rest = params.toString();
  history.replaceState(null, '', `${location.pathname}${location.search}${rest ? `#${rest}` : ''}`);
}

/** Shows the token form (once the API refused the page); the next polls use what is entered. */
function askForToken(wrong) {
  const form = byId('token-form');
  if (!form.hidden) return;
  setText('token-hint', wrong ? 'The service refused this token.' : 'This service needs an access token.');
  form.hidden = false;
  byId('token-input').focus();
}

function setUpTokenForm() {
  const form = byId('token-form');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const input = /** @type {HTMLInputElement} */ (byId('token-input'));
    keepToken(input.value.trim());
    input.value = '';
    form.hidden = true;
  });
}

async function getJson(path) {
  const headers = { accept: 'application/json' };
  if (pageToken) headers.authorization = `Bearer ${pageToken}`;
  const response = await fetch(path, { cache: 'no-store', headers });
  if (response.status === 401) {
    askForToken(Boolean(pageToken));
    throw new Error(`${path}: HTTP 401, a valid access token is needed`);
  }
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

async function pollBatches() {
  const after = model.lastBatchId;
  const data = await getJson(`/api/batches?limit=${MAX_BATCHES}${after === undefined ? '' : `&after=${after}`}`);
  const incoming = Array.isArray(data.batches) ? data.batches : [];
  if (incoming.length > 0) {
    // Ids at or below what we hold mean a restarted service: start over.
    if (after !== undefined && incoming[0].id <= after) model.batches = incoming;
    else model.batches = model.batches.concat(incoming);
    if (model.batches.length > MAX_BATCHES) model.batches = model.batches.slice(-MAX_BATCHES);
    model.lastBatchId = model.batches[model.batches.length - 1].id;
  }
  renderBatches();
}

async function pollStatus() {
  const status = await getJson('/api/status');
  if (model.status && status.startedAt !== model.status.startedAt) {
    // Another process now: its batches and partitions are new.
    model.batches = [];
    model.lastBatchId = undefined;
    model.lag = { times: [], byKey: new Map() };
  }
  model.status = status;
  recordLag(status);
  renderStatus();
  renderLag();
}

async function pollErrors() {
  model.errors = await getJson('/api/errors');
  renderErrors();
}

/** Runs `fn` now and then every `ms` after it finishes (never two at once), reporting failures. */
function every(name, ms, fn) {
  const run = async () => {
    try {
      await fn();
      setConnection(name, true);
    } catch (error) {
      setConnection(name, false, error instanceof Error ? error.message : String(error));
    } finally {
      setTimeout(run, ms);
    }
  };
  void run();
}

function start() {
  takeTokenFromFragment();
  setUpTokenForm();
  createBatchCharts();
  // Status first: the batch charts need the batch interval, the lag labels need the topics.
  every('status', STATUS_POLL_MS, pollStatus);
  every('batches', BATCH_POLL_MS, pollBatches);
  every('errors', ERRORS_POLL_MS, pollErrors);

  let pending = 0;
  window.addEventListener('resize', () => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(resizeCharts);
  });
  // Follow the system's light/dark switch: the charts take their colours from the style sheet.
  window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
    destroyCharts();
    createBatchCharts();
    if (model.batches.length > 0) renderBatches();
    if (model.lag.times.length > 0) renderLag();
  });
  // Say so when the data goes stale (a poll hanging rather than failing).
  setInterval(() => {
    const age = Date.now() - model.lastUpdate;
    if (model.lastUpdate > 0 && age > 3 * STATUS_POLL_MS) {
      setText('updated', `last update ${Math.round(age / 1000)} s ago`);
    }
  }, 1000);
}

if (typeof uPlot === 'undefined') window.addEventListener('load', start, { once: true });
else start();

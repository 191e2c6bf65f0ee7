/**
 * `/metrics` content negotiation: the Prometheus text format 0.0.4 by default, OpenMetrics 1.0.0 when
 * the `Accept` header prefers it.
 *
 * Why not `registry.setContentType()` per request: prom-client decides the format from the registry's
 * content type, and reads it again after every `await` inside `metrics()`, so two concurrent scrapes
 * that flip a shared registry's type get each other's format, even half-way through a body. Worse, in
 * OpenMetrics mode `metrics()` renames every counter object in place (strips `_total`), so after one
 * OpenMetrics scrape every later text scrape prints `sluice_records_in` instead of
 * `sluice_records_in_total`. A second registry built with `Registry.merge()` shares the same metric
 * objects and has the same renaming problem.
 *
 * So the shared registry is never touched: it stays in the text format, and each OpenMetrics scrape
 * renders a throwaway registry of read-only *views* of the shared metrics. A view carries the
 * OpenMetrics family name (counters without `_total`) and delegates `get()` to the real metric, so
 * values are read live and nothing shared is mutated; concurrent scrapes of either format cannot
 * interfere. (Registry default labels, which Sluice does not use, are not carried over.)
 */
import { Registry, type Metric, type OpenMetricsContentType } from 'prom-client';

export type MetricsFormat = 'prometheus' | 'openmetrics';

export const PROMETHEUS_CONTENT_TYPE: string = Registry.PROMETHEUS_CONTENT_TYPE;
export const OPENMETRICS_CONTENT_TYPE: string = Registry.OPENMETRICS_CONTENT_TYPE;

/** OpenMetrics versions whose exposition prom-client's 1.0.0 output satisfies. */
const OPENMETRICS_VERSIONS = new Set(['1.0.0', '0.0.1']);

interface MediaRange {
  type: string;
  subtype: string;
  params: Map<string, string>;
  q: number;
  index: number;
}

function parseAccept(header: string): MediaRange[] {
  const ranges: MediaRange[] = [];
  header.split(',').forEach((part, index) => {
    const [mediaType = '', ...paramParts] = part.split(';').map((s) => s.trim());
    const [type, subtype] = mediaType.toLowerCase().split('/');
    if (!type || !subtype) return;
    const params = new Map<string, string>();
    for (const p of paramParts) {
      const eq = p.indexOf('=');
      if (eq > 0)
        params.set(
          p.slice(0, eq).trim().toLowerCase(),
          p
            .slice(eq + 1)
            .trim()
            .replace(/^"|"$/g, ''),
        );
    }
    const qText = params.get('q');
    const q = qText === undefined ? 1 : Number(qText);
    ranges.push({ type, subtype, params, q: Number.isFinite(q) ? Math.min(1, Math.max(0, q)) : 1, index });
  });
  return ranges;
}

const specificity = (r: MediaRange): number => (r.type === '*' ? 0 : r.subtype === '*' ? 1 : 2);

/**
 * Picks the format the way Prometheus' own client libraries do: media ranges by quality, then by
 * specificity, then in the order given; the first one we can serve wins. Anything else (no header,
 * `*∕*`, only types we cannot produce) gets the text format, which every scraper understands.
 */
export function negotiateMetricsFormat(accept: string | undefined): MetricsFormat {
  if (!accept) return 'prometheus';
  const ranges = parseAccept(accept)
    .filter((r) => r.q > 0)
    .sort((a, b) => b.q - a.q || specificity(b) - specificity(a) || a.index - b.index);
  for (const r of ranges) {
    if (r.type === 'application' && r.subtype === 'openmetrics-text') {
      const version = r.params.get('version');
      if (version === undefined || OPENMETRICS_VERSIONS.has(version)) return 'openmetrics';
      continue;
    }
    if ((r.type === 'text' && (r.subtype === 'plain' || r.subtype === '*')) || r.type === '*') return 'prometheus';
  }
  return 'prometheus';
}

interface MetricLike {
  name: string;
  help: string;
  type: string;
  get(): Promise<{ name: string }>;
  getForPromString?: () => Promise<{ name: string }>;
}

/** The shared registry in the OpenMetrics format, without mutating it (see the module comment). */
export async function renderOpenMetrics(source: Registry): Promise<string> {
  // A fresh registry nobody else sees, so setting its content type races with nothing.
  const view = new Registry<OpenMetricsContentType>();
  view.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
  for (const metric of source.getMetricsAsArray() as unknown as MetricLike[]) {
    const family = metric.type === 'counter' ? metric.name.replace(/_total$/, '') : metric.name;
    // Histograms format their buckets differently for the exposition (`getForPromString`) than for JSON.
    const read = metric.getForPromString ? () => metric.getForPromString!() : () => metric.get();
    const proxy: MetricLike = {
      name: family,
      help: metric.help,
      type: metric.type,
      get: async () => ({ ...(await read()), name: family }),
    };
    view.registerMetric(proxy as unknown as Metric);
  }
  return view.metrics();
}

/** The registry's metrics in the negotiated format, with the content type to send them with. */
export async function renderMetrics(
  registry: Registry,
  accept: string | undefined,
): Promise<{ contentType: string; body: string }> {
  if (negotiateMetricsFormat(accept) === 'openmetrics') {
    return { contentType: OPENMETRICS_CONTENT_TYPE, body: await renderOpenMetrics(registry) };
  }
  // The shared registry is created with, and never moved off, the text format.
  if (registry.contentType !== Registry.PROMETHEUS_CONTENT_TYPE) {
    const view = Registry.merge([registry]);
    view.setContentType(Registry.PROMETHEUS_CONTENT_TYPE);
    return { contentType: PROMETHEUS_CONTENT_TYPE, body: await view.metrics() };
  }
  return { contentType: PROMETHEUS_CONTENT_TYPE, body: await registry.metrics() };
}

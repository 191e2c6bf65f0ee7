/**
 * The status page at `/` and its static assets: plain HTML, one hand-written browser module, a style
 * sheet and uPlot, served from memory (all read once at start-up; nothing from a CDN, so the page
 * works offline and behind strict egress).
 *
 * Caching: the page itself is `no-cache` (always revalidated, answered 304 through its ETag). It links
 * its assets with a content hash (`/assets/status.js?v=<hash>`); a request carrying the current hash is
 * cacheable for a year (`immutable`), anything else is revalidated. Assets are gzipped once when that
 * helps and sent compressed to clients that accept it.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';

export interface Asset {
  /** URL path the asset is served at. */
  path: string;
  contentType: string;
  body: Buffer;
  gzip: Buffer | undefined;
  etag: string;
  /** Short content hash, the `v` query parameter that makes a request cacheable for good. */
  hash: string;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/**
 * The page may load its own scripts, styles and images and talk to its own API, nothing else. uPlot
 * styles its elements through the CSSOM (`element.style`), which `style-src 'self'` allows.
 */
export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const IMMUTABLE = 'public, max-age=31536000, immutable';
const REVALIDATE = 'no-cache';

/**
 * `src/http/assets` next to this module. From a build (`dist/http/`), the assets are expected to have
 * been copied next to it; in a source checkout the sources are used as a fallback.
 */
function defaultAssetsDir(): string {
  const candidates = [new URL('./assets/', import.meta.url), new URL('../../src/http/assets/', import.meta.url)];
  const found = candidates.find((u) => existsSync(new URL('index.html', u)));
  return fileURLToPath(found ?? candidates[0]!);
}

function makeAsset(path: string, body: Buffer, ext = path.slice(path.lastIndexOf('.'))): Asset {
  const digest = createHash('sha256').update(body).digest('base64url');
  const gz = body.length > 1024 ? gzipSync(body, { level: 9 }) : undefined;
  return {
    path,
    contentType: CONTENT_TYPES[ext] ?? 'application/octet-stream',
    body,
    gzip: gz && gz.length < body.length ? gz : undefined,
    etag: `"${digest.slice(0, 27)}"`,
    hash: digest.slice(0, 12),
  };
}

export interface StatusPageAssets {
  page: Asset;
  assets: Asset[];
}

/** Reads the page and its assets; throws (at start-up) when a file is missing. */
export function loadStatusPageAssets(assetsDir: string = defaultAssetsDir()): StatusPageAssets {
  const dir = assetsDir.endsWith('/') ? assetsDir : `${assetsDir}/`;
  const require = createRequire(import.meta.url);
  const uplotJs = require.resolve('uplot/dist/uPlot.iife.min.js');
  const uplotCss = require.resolve('uplot/dist/uPlot.min.css');
  const assets = [
    makeAsset('/assets/status.js', readFileSync(`${dir}status.js`)),
    makeAsset('/assets/status.css', readFileSync(`${dir}status.css`)),
    makeAsset('/assets/favicon.svg', readFileSync(`${dir}favicon.svg`)),
    makeAsset('/assets/vendor/uPlot.iife.min.js', readFileSync(uplotJs)),
    makeAsset('/assets/vendor/uPlot.min.css', readFileSync(uplotCss)),
  ];
  // The page links every asset by its content hash: `{{/assets/status.js}}` → `/assets/status.js?v=…`.
  const html = readFileSync(`${dir}index.html`, 'utf8').replace(/\{\{(\/assets\/[^}]+)\}\}/g, (_m, path: string) => {
    const asset = assets.find((a) => a.path === path);
    if (!asset) throw new Error(`status page links an unknown asset ${path}`);
    return `${path}?v=${asset.hash}`;
  });
  return { page: makeAsset('/', Buffer.from(html, 'utf8'), '.html'), assets };
}

function acceptsGzip(req: FastifyRequest): boolean {
  const header = req.headers['accept-encoding'];
  if (typeof header !== 'string') return false;
  return header.split(',').some((part) => {
    const [coding = '', ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    return (coding === 'gzip' || coding === '*') && (q === undefined || Number(q.slice(2)) > 0);
  });
}

function send(req: FastifyRequest, reply: FastifyReply, asset: Asset, cacheControl: string): FastifyReply {
  reply
    .header('content-type', asset.contentType)
    .header('cache-control', cacheControl)
    .header('etag', asset.etag)
    .header('x-content-type-options', 'nosniff');
  if (asset.gzip) reply.header('vary', 'Accept-Encoding');
  const match = req.headers['if-none-match'];
  if (typeof match === 'string' && match.split(',').some((t) => t.trim().replace(/^W\//, '') === asset.etag)) {
    return reply.code(304).send();
  }
  if (asset.gzip && acceptsGzip(req)) return reply.header('content-encoding', 'gzip').send(asset.gzip);
  return reply.send(asset.body);
}

/** Registers `/` and `/assets/…`. */
export function registerStatusPage(app: FastifyInstance, loaded: StatusPageAssets = loadStatusPageAssets()): void {
  const { page, assets } = loaded;
  app.get('/', async (req, reply) => {
    reply
      .header('content-security-policy', CONTENT_SECURITY_POLICY)
      .header('referrer-policy', 'no-referrer')
      .header('x-frame-options', 'DENY');
    return send(req, reply, page, REVALIDATE);
  });
  for (const asset of assets) {
    app.get<{ Querystring: { v?: string } }>(asset.path, async (req, reply) =>
      send(req, reply, asset, req.query.v === asset.hash ? IMMUTABLE : REVALIDATE),
    );
  }
}

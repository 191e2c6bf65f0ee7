/**
 * Bearer-token access to the JSON API. With SLUICE_HTTP_TOKEN set, every `/api/*` route — and
 * `/metrics` with SLUICE_METRICS_REQUIRE_TOKEN — answers only a request carrying
 * `Authorization: Bearer <token>`; any other gets 401 with `WWW-Authenticate: Bearer` and no data.
 * `/healthz` and `/readyz` stay open for the orchestrator's probes, and the status page's own files
 * too (the page sends the token with its API calls).
 *
 * The route is told by the route the router matched (`routeOptions.url`), not by the raw path, so a
 * path spelled another way (percent-encoded, say) that reaches an API route is checked all the same;
 * an unmatched path under `/api/` is refused too, so the API's shape does not leak. Tokens are
 * compared as SHA-256 digests with `timingSafeEqual`: the comparison takes as long whatever the guess.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { type FastifyInstance, type FastifyRequest } from 'fastify';

export interface AuthOptions {
  /** Undefined: the API is open. */
  token: string | undefined;
  metricsRequireToken: boolean;
}

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** Whether a path needs the token: the API, and `/metrics` when asked. */
export function needsToken(path: string, metricsRequireToken: boolean): boolean {
  if (path === '/api' || path.startsWith('/api/')) return true;
  return metricsRequireToken && path === '/metrics';
}

/** The token a request carries (`Authorization: Bearer <token>`), if any. */
export function bearerOf(req: Pick<FastifyRequest, 'headers'>): string | undefined {
  const header = req.headers.authorization;
  const match = typeof header === 'string' ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header) : null;
  return match?.[1];
}

/** Adds the check to every request of `app` (nothing when no token is configured). */
export function registerBearerAuth(app: FastifyInstance, options: AuthOptions): void {
  if (options.token === undefined) return;
  const expected = digest(options.token);
  app.addHook('onRequest', async (req, reply) => {
    const path = req.routeOptions.url ?? req.url.split('?')[0] ?? req.url;
    if (!needsToken(path, options.metricsRequireToken)) return;
    const given = bearerOf(req);
    if (given !== undefined && timingSafeEqual(digest(given), expected)) return;
    // RFC 6750: a request without credentials gets the bare challenge, a wrong token `invalid_token`.
    const challenge = given === undefined ? 'Bearer realm="sluice"' : 'Bearer realm="sluice", error="invalid_token"';
    const reason = given === undefined ? 'a bearer token is required' : 'the bearer token is not valid';
    return reply
      .code(401)
      .header('www-authenticate', challenge)
      .header('cache-control', 'no-store')
      .send({ error: 'unauthorized', reason });
  });
}

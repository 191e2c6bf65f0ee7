/**
 * The HTTP settings of queryable state and the API token (`schema.ts`, `resolve.ts`): the advertised
 * URL's default (this host's name and the port), a URL or a bare host (an IP, as Kubernetes'
 * `status.podIP`), one line naming the variable for anything else; the token's form, its cross-field
 * rule with SLUICE_METRICS_REQUIRE_TOKEN, and its redaction wherever the configuration is printed.
 */
import { hostname } from 'node:os';
import { describe, expect, test } from '@jest/globals';
import { redactConfig, resolveConfig } from '../../src/config/resolve.ts';
import { ConfigError } from '../../src/errors.ts';

const base = { KAFKA_BROKERS: 'kafka:9092' };
const TOKEN = '0123456789abcdef0123456789abcdef';

function issues(env: Record<string, string>): readonly string[] {
  try {
    resolveConfig({ ...base, ...env });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
}

describe('SLUICE_HTTP_ADVERTISED_URL', () => {
  test('defaults to this host name and SLUICE_HTTP_PORT', () => {
    expect(resolveConfig(base).http.advertisedUrl).toBe(`http://${hostname()}:8080`);
    expect(resolveConfig({ ...base, SLUICE_HTTP_PORT: '9000' }).http.advertisedUrl).toBe(`http://${hostname()}:9000`);
  });

  test('a URL is kept (without a trailing slash); a bare host gets http:// and the port', () => {
    const advertised = (value: string, port = '8080'): string =>
      resolveConfig({ ...base, SLUICE_HTTP_PORT: port, SLUICE_HTTP_ADVERTISED_URL: value }).http.advertisedUrl;
    expect(advertised('http://sluice-0.sluice:8080')).toBe('http://sluice-0.sluice:8080');
    expect(advertised('https://example.com/')).toBe('https://example.com');
    expect(advertised('https://proxy.example.com/sluice/a/')).toBe('https://proxy.example.com/sluice/a');
    expect(advertised('10.1.2.3', '9090')).toBe('http://10.1.2.3:9090');
    expect(advertised('fd00::17')).toBe('http://[fd00::17]:8080');
    expect(advertised('[fd00::17]')).toBe('http://[fd00::17]:8080');
    expect(advertised('sluice-0.sluice.default.svc')).toBe('http://sluice-0.sluice.default.svc:8080');
  });

  test('anything else: one line naming the variable', () => {
    for (const value of [
      'localhost:8080',
      'ftp://host/x',
      'http://host:8080/?q=1',
      'http://host#x',
      'not a url',
      'http://',
    ]) {
      const found = issues({ SLUICE_HTTP_ADVERTISED_URL: value });
      expect(found).toHaveLength(1);
      expect(found[0]).toBe(
        `SLUICE_HTTP_ADVERTISED_URL "${value}" is not an http(s) URL without query or fragment (e.g. http://sluice-0.sluice:8080, or a bare host such as 10.0.0.7)`,
      );
    }
    expect(issues({ SLUICE_HTTP_ADVERTISED_URL: 'http://user:pw@host:1' })).toEqual([
      'SLUICE_HTTP_ADVERTISED_URL must not carry credentials (the bearer token is SLUICE_HTTP_TOKEN)',
    ]);
  });
});

describe('SLUICE_HTTP_TOKEN and SLUICE_METRICS_REQUIRE_TOKEN', () => {
  test('unset by default: the API is open and /metrics too', () => {
    const { http } = resolveConfig(base);
    expect([http.token, http.metricsRequireToken]).toEqual([undefined, false]);
  });

  test('a token of at least 16 token characters; the metrics flag needs it', () => {
    const config = resolveConfig({ ...base, SLUICE_HTTP_TOKEN: TOKEN, SLUICE_METRICS_REQUIRE_TOKEN: 'true' });
    expect([config.http.token, config.http.metricsRequireToken]).toEqual([TOKEN, true]);
    expect(resolveConfig({ ...base, SLUICE_HTTP_TOKEN: 'a-b.c_d~e+f/g0123==' }).http.token).toBe('a-b.c_d~e+f/g0123==');
    expect(issues({ SLUICE_HTTP_TOKEN: 'short' })).toEqual(['SLUICE_HTTP_TOKEN must be at least 16 characters long']);
    expect(issues({ SLUICE_HTTP_TOKEN: `${TOKEN} x` })).toEqual([
      'SLUICE_HTTP_TOKEN must be made of A-Z a-z 0-9 - . _ ~ + / (e.g. the output of `openssl rand -hex 32`)',
    ]);
    expect(issues({ SLUICE_METRICS_REQUIRE_TOKEN: 'true' })).toEqual([
      'SLUICE_METRICS_REQUIRE_TOKEN needs SLUICE_HTTP_TOKEN to be set',
    ]);
    expect(issues({ SLUICE_METRICS_REQUIRE_TOKEN: 'sometimes' })).toHaveLength(1);
  });

  test('the token is redacted where the configuration is printed; the rest of http is not', () => {
    const config = resolveConfig({ ...base, SLUICE_HTTP_TOKEN: TOKEN, SLUICE_HTTP_ADVERTISED_URL: '10.0.0.7' });
    const redacted = redactConfig(config) as typeof config;
    expect(redacted.http).toEqual({ ...config.http, token: '[redacted]' });
    expect(JSON.stringify(redacted)).not.toContain(TOKEN);
    expect(config.http.token).toBe(TOKEN);
  });
});

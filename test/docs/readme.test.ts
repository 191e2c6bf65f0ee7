/** The README's tables are generated from the code; this fails when they drift (run `npm run docs`). */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from '@jest/globals';
import { renderReadme } from '../../scripts/docs-tables.ts';
import { ENV } from '../../src/config/schema.ts';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

describe('README', () => {
  test('configuration and metrics tables match the code', () => {
    expect(readme).toBe(renderReadme(readme));
  });

  test('every environment variable is documented with its default', () => {
    for (const [name, spec] of Object.entries(ENV)) {
      const row = readme.split('\n').find((line) => line.startsWith(`| \`${name}\` |`));
      expect(row).toBeDefined();
      if ('default' in spec) expect(row).toContain(`\`${spec.default}\``);
    }
  });

  test('shows the two quick-start commands', () => {
    expect(readme).toContain('npm run demo');
    expect(readme).toContain('npm run verify');
  });
});

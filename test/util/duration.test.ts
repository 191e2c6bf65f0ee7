/** parseDuration: numbers of milliseconds and unit strings; anything else is undefined. */
import { describe, expect, test } from '@jest/globals';
import { parseDuration } from '../../src/util/duration.ts';

describe('parseDuration', () => {
  test('numbers are milliseconds', () => {
    expect(parseDuration(0)).toBe(0);
    expect(parseDuration(250)).toBe(250);
    expect(parseDuration(1.5)).toBe(1.5);
  });

  test('unit strings', () => {
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('10s')).toBe(10_000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('2d')).toBe(172_800_000);
    expect(parseDuration('1.5s')).toBe(1_500);
    expect(parseDuration('0s')).toBe(0);
    expect(parseDuration(' 10 s ')).toBe(10_000);
  });

  test('invalid input is undefined', () => {
    for (const bad of [-1, Number.NaN, Infinity, -Infinity, '10', '-5s', '10x', '1e3ms', 's', '', '1.s', '10 sec']) {
      expect(parseDuration(bad)).toBeUndefined();
    }
    for (const bad of [null, undefined, {}, [], true, 10n]) {
      expect(parseDuration(bad)).toBeUndefined();
    }
  });
});

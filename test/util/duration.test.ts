/** parseDuration: numbers of milliseconds, unit strings and '0'; anything else is undefined. */
import { describe, expect, test } from '@jest/globals';
import { type Duration, isUnitlessNumber, parseDuration } from '../../src/util/duration.ts';

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

  test("'0' needs no unit: zero is zero whatever the unit", () => {
    expect(parseDuration('0')).toBe(0);
    expect(parseDuration(' 0 ')).toBe(0);
    expect(parseDuration('0.0')).toBe(0);
    expect(parseDuration('00')).toBe(0);
    const lateness: Duration = '0';
    expect(parseDuration(lateness)).toBe(0);
  });

  test('a bare non-zero number string is refused (ms or s?), and recognised as only lacking its unit', () => {
    for (const unitless of ['5', '1500', ' 30 ', '1.5', '0.5', '01']) {
      expect(parseDuration(unitless)).toBeUndefined();
      expect(isUnitlessNumber(unitless)).toBe(true);
    }
    for (const other of ['0', '5s', 'soon', '-5', '', 5, 0, null, undefined]) {
      expect(isUnitlessNumber(other)).toBe(false);
    }
  });

  test('invalid input is undefined', () => {
    for (const bad of [
      -1,
      Number.NaN,
      Infinity,
      -Infinity,
      '10',
      '-5s',
      '10x',
      '1e3ms',
      's',
      '',
      '1.s',
      '10 sec',
      '-0',
      '0x',
      '0 0',
    ]) {
      expect(parseDuration(bad)).toBeUndefined();
    }
    for (const bad of [null, undefined, {}, [], true, 10n]) {
      expect(parseDuration(bad)).toBeUndefined();
    }
  });
});

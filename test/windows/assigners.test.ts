/** Window assigners: epoch-aligned tumbling and sliding windows, boundaries and negative times. */
import { describe, expect, test } from '@jest/globals';
import { resolveAssigner, sliding, tumbling } from '../../src/windows/assigners.ts';

describe('resolveAssigner', () => {
  test('resolves durations to milliseconds', () => {
    expect(resolveAssigner(tumbling('10s'))).toEqual({ kind: 'tumbling', sizeMs: 10_000, slideMs: 10_000 });
    expect(resolveAssigner(sliding('1m', 250))).toEqual({ kind: 'sliding', sizeMs: 60_000, slideMs: 250 });
  });

  test('refuses zero, negative and malformed durations', () => {
    expect(resolveAssigner(tumbling(0))).toBeUndefined();
    expect(resolveAssigner(tumbling(-5))).toBeUndefined();
    expect(resolveAssigner(sliding('10s', '0s'))).toBeUndefined();
    expect(resolveAssigner(tumbling('ten' as never))).toBeUndefined();
  });
});

import { describe, expect, it } from '@jest/globals';
import { InputRecap, StatelessOutput, WindowedOutput } from '../../bench/lib/latency-check.ts';
import { latencyDurationProblem } from '../../bench/lib/latency.ts';

const value = (page: string, user: string, ts: number, seq: number): string =>
  JSON.stringify({ page, user, ts, seq, sent: ts, pad: 'x' });
const result = (page: string, windowStart: number, count: number): string =>
  JSON.stringify({ key: page, windowStart, windowEnd: windowStart + 10_000, value: count });

describe('InputRecap', () => {
  it('takes a window as closable at the first produce time of a record at or past its end + 5 s', () => {
    const input = new InputRecap(10);
    input.add(value('/a', 'user-1', 1_000, 0), 1_000);
    input.add(value('/a', 'user-1', 14_999, 1), 15_000); // one millisecond short of closing [0, 10 s)
    input.add(value('/b', 'user-2', 15_000, 2), 15_100); // closes [0, 10 s)
    input.add(value('/b', 'user-2', 26_000, 3), 15_050); // closes [0, 10 s) and [10, 20 s), produced first
    const e = input.expected();
    expect(e.closableAt.get(0)).toBe(15_050);
    expect(e.closableAt.get(1)).toBe(15_050);
    expect(e.closableAt.has(2)).toBe(false);
    expect([...e.windows]).toEqual([
      ['/a|0', 1],
      ['/a|10000', 1],
      ['/b|10000', 1],
      ['/b|20000', 1],
    ]);
  });

  it('keeps what the stateless job keeps: every user but the bots', () => {
    const input = new InputRecap(4);
    input.add(value('/a', 'user-1', 1, 0), 100);
    input.add(value('/a', 'bot-2', 1, 1), 101);
    input.add(value('/a', 'user-3', 1, 2), 102);
    const e = input.expected();
    expect(e.kept).toBe(2);
    expect([...e.keptSentAt]).toEqual([100, NaN, 102, NaN]);
  });
});

describe('WindowedOutput', () => {
  const input = new InputRecap(10);
  input.add(value('/a', 'user-1', 10_500, 0), 10_500);
  input.add(value('/a', 'user-1', 11_000, 1), 11_000);
  input.add(value('/b', 'user-2', 12_000, 2), 12_000);
  input.add(value('/b', 'user-2', 25_000, 3), 25_000); // closes [10 s, 20 s)
  input.add(value('/c', 'user-2', 35_000, 4), 35_000); // closes [20 s, 30 s)
  const e = input.expected();

  it('measures each window from its closable time and names nothing wrong when the output is exact', () => {
    const out = new WindowedOutput();
    out.add(result('/a', 10_000, 2), 25_400);
    out.add(result('/b', 10_000, 1), 25_700);
    out.add(result('/b', 20_000, 1), 35_300);
    expect(out.complete(e, 10_000, 30_000)).toBe(true);
    const o = out.result(e, 10_000, 30_000);
    expect(o.samples.sort((a, b) => a - b)).toEqual([300, 400, 700]);
    expect(o).toMatchObject({ expected: 3, missing: 0, wrong: [] });
  });

  it('counts missing, wrong, repeated and unexpected windows', () => {
    const out = new WindowedOutput();
    out.add(result('/a', 10_000, 1), 25_400); // one record short
    out.add(result('/a', 10_000, 2), 25_500); // and written again
    out.add(result('/z', 10_000, 5), 25_600); // never in the input
    expect(out.complete(e, 10_000, 30_000)).toBe(false);
    const o = out.result(e, 10_000, 30_000);
    expect(o.missing).toBe(2);
    expect(o.wrong).toEqual(['1 windows differ', '1 windows written more than once', '1 unexpected windows']);
  });

  it('measures only the windows inside the measured span', () => {
    const out = new WindowedOutput();
    out.add(result('/b', 20_000, 1), 35_300);
    expect(out.complete(e, 20_000, 30_000)).toBe(true);
    expect(out.result(e, 20_000, 30_000).samples).toEqual([300]);
  });
});

describe('StatelessOutput', () => {
  const input = new InputRecap(5);
  for (let seq = 0; seq < 5; seq++) input.add(value('/a', seq === 3 ? 'bot-3' : `user-${seq}`, 0, seq), 1_000 + seq);
  const e = input.expected();

  it('measures each kept record from its produce time, within the span', () => {
    const out = new StatelessOutput(5);
    for (const seq of [0, 1, 2, 4]) out.add(value('/a', `user-${seq}`, 0, seq), 1_100 + seq * 10);
    expect(out.complete(e, 0, 0)).toBe(true);
    const o = out.result(e, 1_001, 1_003);
    expect(o).toMatchObject({ expected: 2, missing: 0, wrong: [] });
    expect(o.samples).toEqual([109, 118]);
  });

  it('counts missing, repeated and should-have-been-dropped records', () => {
    const out = new StatelessOutput(5);
    for (const seq of [0, 0, 1, 3]) out.add(value('/a', `user-${seq}`, 0, seq), 2_000);
    expect(out.complete(e, 0, 0)).toBe(false);
    const o = out.result(e, 0, 10_000);
    expect(o.missing).toBe(2);
    expect(o.wrong).toEqual(['1 records written more than once', '1 records that should have been dropped']);
  });
});

describe('latencyDurationProblem', () => {
  it('refuses a duration too short for two whole windows, and accepts one long enough', () => {
    expect(latencyDurationProblem(19)).toMatch(/--latency-seconds must be 0 .* or at least 20/);
    expect(latencyDurationProblem(Number.NaN)).toBeDefined();
    expect(latencyDurationProblem(20)).toBeUndefined();
  });
});

/** Shared progress: what a worker writes per record and phase, as the main thread reads it. */
import { describe, expect, test } from '@jest/globals';
import { Progress } from '../../src/pool/progress.ts';

describe('Progress', () => {
  test('starts idle, with no record and a zero counter', () => {
    const p = new Progress();
    expect(p.current).toBe('idle');
    expect(p.position).toBeUndefined();
    expect(p.counter).toBe(0);
  });

  test('processing: the partition index and the record in hand, each record counted', () => {
    const worker = new Progress();
    const main = new Progress(worker.buffer); // the other thread's view of the same memory
    worker.phase('processing', 2);
    expect(main.current).toBe('processing');
    expect(main.position).toBeUndefined(); // no record begun in this partition yet
    worker.at(40);
    expect(main.position).toEqual({ partitionIndex: 2, offset: 40, sub: -1 });
    worker.at(41, 3);
    expect(main.position).toEqual({ partitionIndex: 2, offset: 41, sub: 3 });
    expect(main.counter).toBe(2);
  });

  test('a new partition forgets the last record; the counter goes on', () => {
    const p = new Progress();
    p.phase('processing', 0);
    p.at(7);
    p.phase('processing', 1);
    expect(p.position).toBeUndefined();
    p.at(0);
    expect(p.position).toEqual({ partitionIndex: 1, offset: 0, sub: -1 });
    expect(p.counter).toBe(2);
  });

  test('publishing and idle name no record', () => {
    const p = new Progress();
    p.phase('processing', 0);
    p.at(7);
    p.phase('publishing');
    expect(p.current).toBe('publishing');
    expect(p.position).toBeUndefined();
    p.phase('idle');
    expect(p.current).toBe('idle');
    expect(p.position).toBeUndefined();
    expect(p.counter).toBe(1);
  });
});

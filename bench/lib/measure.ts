/** Measuring helpers: peak RSS from /proc, percentiles, reading an output topic until complete. */
import { readFileSync } from 'node:fs';
import { type Kafka } from 'kafkajs';

/** A process's resident set size (VmRSS) or its peak (VmHWM) in bytes, from /proc; 0 when it is gone. */
export function residentBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = new RegExp(`${field}:\\s+(\\d+)\\s+kB`).exec(status);
    return match?.[1] ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Peak resident set size (VmHWM) of a process in bytes; 0 when it is gone. */
export const peakRss = (pid: number): number => residentBytes(pid, 'VmHWM');

/** Samples VmHWM of `pid` until stopped: the process's own high-water mark survives until it exits. */
export function rssSampler(pid: number): { stop(): number } {
  let peak = peakRss(pid);
  const timer = setInterval(() => (peak = Math.max(peak, peakRss(pid))), 200);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, peakRss(pid));
    },
  };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export interface OutputRecord {
  key: string | null;
  value: Buffer | null;
  receivedAt: number;
  /** The record's own timestamp (CreateTime unless the topic appends its own). */
  timestamp: number;
}

/**
 * Consumes `topic` from the beginning and calls `onRecord` for each record as it arrives; resolves
 * when `done()` holds or the timeout passes (then rejects).
 */
export async function consumeUntil(
  kafka: Kafka,
  topic: string,
  groupId: string,
  onRecord: (r: OutputRecord) => void,
  done: () => boolean,
  timeoutMs: number,
): Promise<void> {
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 20 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  let finished!: () => void;
  const whenDone = new Promise<void>((r) => (finished = r));
  await consumer.run({
    eachBatch: async ({ batch }) => {
      const now = Date.now();
      for (const m of batch.messages)
        onRecord({
          key: m.key?.toString() ?? null,
          value: m.value ?? null,
          receivedAt: now,
          timestamp: Number(m.timestamp),
        });
      if (done()) finished();
    },
  });
  // `done()` may also become true with time (a quiet output), not only with records.
  const poll = setInterval(() => {
    if (done()) finished();
  }, 500);
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      whenDone,
      new Promise(
        (_, reject) => (timer = setTimeout(() => reject(new Error(`timed out reading ${topic}`)), timeoutMs)),
      ),
    ]);
  } finally {
    clearTimeout(timer);
    clearInterval(poll);
    await consumer.disconnect();
  }
}

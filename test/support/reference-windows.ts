/**
 * A plain reference implementation of windowed aggregation (design §2) for differential tests.
 * Written to be obviously right rather than fast: it shares no code with src/windows (window starts
 * are derived here with their own arithmetic), keeps every value of every window in an array and
 * aggregates at the end.
 *
 * Semantics: each partition keeps its own stream time (largest event time seen so far). Before a
 * record updates it, a window [start, end) of that record is closed when end + lateness <= stream
 * time. The record is added to its open windows; if none is open it is late. Windows are never
 * merged across partitions.
 */

export interface RefRecord {
  partition: number;
  key: string | null;
  eventTime: number;
  value: unknown;
}

export interface RefOptions {
  kind: 'tumbling' | 'sliding';
  sizeMs: number;
  slideMs?: number;
  latenessMs: number;
  aggregate: 'count' | 'sum' | 'min' | 'max' | 'avg';
  /**
   * The number to aggregate from a record's value (default: the value itself). Named `extract`, not
   * `valueOf`: every object has `Object.prototype.valueOf`, so an options literal without one would
   * neither type-check against `(v: unknown) => number` nor be told apart at run time.
   */
  extract?: (v: unknown) => number;
}

export interface RefResult {
  key: string | null;
  windowStart: number;
  windowEnd: number;
  value: number | null;
}

interface Group {
  partition: number;
  key: string | null;
  windowStart: number;
  windowEnd: number;
  values: number[];
}

/** Every window start s (a multiple of the slide) with s <= eventTime < s + size. */
function windowStartsOf(eventTime: number, options: RefOptions): number[] {
  const slide = options.kind === 'tumbling' ? options.sizeMs : (options.slideMs ?? options.sizeMs);
  const size = options.sizeMs;
  // k * slide <= eventTime          <=> k <= eventTime / slide
  // k * slide + size > eventTime    <=> k > (eventTime - size) / slide
  const highest = Math.floor(eventTime / slide);
  const lowest = Math.floor((eventTime - size) / slide) + 1;
  const starts: number[] = [];
  for (let k = lowest; k <= highest; k++) {
    starts.push(k * slide);
  }
  return starts;
}

function aggregateValues(values: number[], aggregate: RefOptions['aggregate']): number | null {
  if (aggregate === 'count') return values.length;
  if (values.length === 0) return null;
  let total = 0;
  for (const v of values) total = total + v;
  if (aggregate === 'sum') return total;
  if (aggregate === 'avg') return total / values.length;
  let best = values[0] as number;
  for (const v of values) {
    if (aggregate === 'min' && v < best) best = v;
    if (aggregate === 'max' && v > best) best = v;
  }
  return best;
}

export function referenceWindows(
  records: RefRecord[],
  options: RefOptions,
): { closed: RefResult[]; open: RefResult[]; late: number[] } {
  const streamTimes: Record<number, number> = {};
  const groups: Record<string, Group> = {};
  const late: number[] = [];

  for (let index = 0; index < records.length; index++) {
    const record = records[index] as RefRecord;
    const streamTime = record.partition in streamTimes ? (streamTimes[record.partition] as number) : -Infinity;

    const openStarts: number[] = [];
    for (const start of windowStartsOf(record.eventTime, options)) {
      const end = start + options.sizeMs;
      const closed = end + options.latenessMs <= streamTime;
      if (!closed) openStarts.push(start);
    }

    if (openStarts.length === 0) {
      late.push(index);
    } else {
      const number = options.aggregate === 'count' ? 0 : toNumber(record.value, options);
      for (const start of openStarts) {
        const id = JSON.stringify([record.partition, record.key, start]);
        if (!(id in groups)) {
          groups[id] = {
            partition: record.partition,
            key: record.key,
            windowStart: start,
            windowEnd: start + options.sizeMs,
            values: [],
          };
        }
        (groups[id] as Group).values.push(number);
      }
    }

    streamTimes[record.partition] = Math.max(streamTime, record.eventTime);
  }

  const closed: RefResult[] = [];
  const open: RefResult[] = [];
  for (const group of Object.values(groups)) {
    const result: RefResult = {
      key: group.key,
      windowStart: group.windowStart,
      windowEnd: group.windowEnd,
      value: aggregateValues(group.values, options.aggregate),
    };
    const streamTime = streamTimes[group.partition] as number;
    if (streamTime >= group.windowEnd + options.latenessMs) closed.push(result);
    else open.push(result);
  }
  return { closed, open, late };
}

function toNumber(value: unknown, options: RefOptions): number {
  const n = options.extract ? options.extract(value) : value;
  if (typeof n !== 'number') throw new TypeError(`reference: value is not a number: ${String(n)}`);
  return n;
}

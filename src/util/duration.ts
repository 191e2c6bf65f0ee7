/** Durations in job modules and configuration: a number of milliseconds or a string like `250ms`, `10s`, `5m`, `1h`, `1d`. */
export type Duration = number | `${number}${'ms' | 's' | 'm' | 'h' | 'd'}`;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses a duration to milliseconds. Returns `undefined` for anything that is not a finite,
 * non-negative duration; callers turn that into an error naming their field.
 */
export function parseDuration(input: unknown): number | undefined {
  if (typeof input === 'number') return Number.isFinite(input) && input >= 0 ? input : undefined;
  if (typeof input !== 'string') return undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(input);
  if (!match?.[1] || !match[2]) return undefined;
  const unit = UNITS[match[2]];
  if (unit === undefined) return undefined;
  const ms = Number(match[1]) * unit;
  return Number.isFinite(ms) ? ms : undefined;
}

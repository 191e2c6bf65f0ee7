/**
 * Durations in job modules and configuration: a number of milliseconds, or a string with a unit like
 * `250ms`, `10s`, `5m`, `1h`, `1d`. The one string without a unit is `'0'`: zero is zero in any unit.
 */
export type Duration = number | '0' | `${number}${'ms' | 's' | 'm' | 'h' | 'd'}`;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses a duration to milliseconds. Returns `undefined` for anything that is not a finite,
 * non-negative duration; callers turn that into an error naming their field.
 *
 * A string holding a bare non-zero number (`'5'`) is refused: written as a string it could mean
 * milliseconds or seconds, and guessing wrong is silent (a 30 ms shutdown timeout meant as 30 s).
 * See {@link isUnitlessNumber} for the hint callers give.
 */
export function parseDuration(input: unknown): number | undefined {
  if (typeof input === 'number') return Number.isFinite(input) && input >= 0 ? input : undefined;
  if (typeof input !== 'string') return undefined;
  if (/^\s*0+(?:\.0+)?\s*$/.test(input)) return 0;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(input);
  if (!match?.[1] || !match[2]) return undefined;
  const unit = UNITS[match[2]];
  if (unit === undefined) return undefined;
  const ms = Number(match[1]) * unit;
  return Number.isFinite(ms) ? ms : undefined;
}

/** True for a string that is a number without a unit (other than zero): the value lacks only its unit. */
export function isUnitlessNumber(input: unknown): input is string {
  return typeof input === 'string' && /^\s*\d+(?:\.\d+)?\s*$/.test(input) && parseDuration(input) === undefined;
}

/**
 * `sluice`: the public surface for job authors. A job module imports from here and default-exports
 * `defineJob({...})`. Nothing internal to the engine is exported.
 */
export { defineJob, isJobDefinition } from './job/define-job.ts';
export type { Format, JobDefinition, JobSpec, RecordMeta } from './job/define-job.ts';
export type { AggregatedStream, Stream, WindowedStream, WindowOptions } from './job/stream.ts';
export { table } from './job/table.ts';
export type { Table, TableKind, TableOptions } from './job/table.ts';
export type { JoinOptions } from './job/stream.ts';
export type { Duration } from './util/duration.ts';
export { sliding, tumbling } from './windows/assigners.ts';
export type { SlidingAssigner, TumblingAssigner, WindowAssigner } from './windows/assigners.ts';
export { session } from './windows/assigners.ts';
export type { SessionAssigner } from './windows/assigners.ts';
export { avg, count, custom, max, min, sum } from './windows/aggregators.ts';
export type { Aggregator } from './windows/aggregators.ts';
export {
  ConfigError,
  DeserializeError,
  isSluiceError,
  JobLoadError,
  JobValidationError,
  SluiceError,
  UserCodeError,
} from './errors.ts';
export type { ErrorCode } from './errors.ts';

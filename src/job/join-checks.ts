/**
 * The checks of `joinTable` steps and of the tables a job joins (table.ts): each pushes an issue naming
 * the step or the table when something is wrong, as the other field checks do, so that one
 * `JobValidationError` lists every problem. A partitioned table is joined where the stream is
 * partitioned by the key it is looked up with: before any `keyBy` (the Kafka key of an input
 * partition), or after the `keyBy` that re-partitions the stream for a window (the repartition
 * partition's key) — anywhere else its partition p would not hold the keys of the task's partition p.
 */
import { checkChoice, checkKnown, isRecord, isTopicName, type Issues, show } from './field-checks.ts';
import { type JoinPlan, type TableFormat, type TablePlan, tableInternals } from './table.ts';

const JOIN_OPTIONS = ['kind', 'key'];
const TABLE_OPTIONS = ['kind', 'format'];
const FORMATS = ['json', 'string', 'bytes'] as const satisfies readonly TableFormat[];

/** A `joinTable(table, fn, options)` step as recorded by the builder (stream.ts). */
export interface JoinStep {
  readonly table: unknown;
  readonly fn: unknown;
  readonly options: unknown;
}

function checkTable(value: unknown, label: string, issues: Issues): TablePlan | undefined {
  const internals = tableInternals(value);
  if (!internals) {
    issues.push(`pipeline: ${label} expects a table declared with table(topic, options) (got ${show(value)})`);
    return undefined;
  }
  const { topic } = internals;
  const given = internals.options ?? {};
  const where = `table ${show(topic)}`;
  let valid = true;
  if (!isTopicName(topic)) {
    issues.push(`pipeline: ${label}: table topic ${show(topic)} is not a valid topic name`);
    valid = false;
  }
  if (!isRecord(given)) {
    issues.push(`pipeline: ${label}: ${where} options must be an object (got ${show(given)})`);
    return undefined;
  }
  checkKnown(given, TABLE_OPTIONS, 'option', `${where} options`, issues);
  const kind = checkChoice(given['kind'], `${where} kind`, ['partitioned', 'global'], issues);
  const format = checkChoice(given['format'], `${where} format`, FORMATS, issues);
  if (!valid || !kind || !format) return undefined;
  return { topic: topic as string, kind, format };
}

/** Validates one `joinTable` step; returns its join when it is right. */
export function checkJoin(step: JoinStep, label: string, issues: Issues): JoinPlan | undefined {
  const table = checkTable(step.table, label, issues);
  if (typeof step.fn !== 'function') issues.push(`pipeline: ${label} expects a function (got ${show(step.fn)})`);
  const given = step.options ?? {};
  if (!isRecord(given)) {
    issues.push(`pipeline: ${label} options must be an object (got ${show(given)})`);
    return undefined;
  }
  checkKnown(given, JOIN_OPTIONS, 'option', `${label} options`, issues);
  const kind = checkChoice(given['kind'], `${label} kind`, ['inner', 'left'], issues);
  const key = given['key'];
  if (key !== undefined && typeof key !== 'function') {
    issues.push(`pipeline: ${label} key must be a function of the event (got ${show(key)})`);
    return undefined;
  }
  if (key !== undefined && table?.kind === 'partitioned') {
    issues.push(
      `pipeline: ${label}: the key option needs a global table; table "${table.topic}" is partitioned, so it is looked up with the stream's key (the key its partitions are chosen by)`,
    );
    return undefined;
  }
  if (!table || !kind || typeof step.fn !== 'function') return undefined;
  return { table, kind, key: key as JoinPlan['key'] };
}

/** An operator as far as the table checks are concerned (plan.ts `Op`). */
interface JoinedOp {
  kind: string;
  label: string;
  join?: JoinPlan | undefined;
}

/**
 * The distinct tables of a job's operators, checked together: one declaration per topic, no table on a
 * topic the job reads, writes or owns, and partitioned tables only where the stream is partitioned by
 * the lookup key. `repartitioned`: a window follows the `keyBy`, which re-partitions the stream.
 */
export function checkTables(
  ops: readonly JoinedOp[],
  job: { name: string | undefined; inputTopics: readonly string[]; outputTopic: string | undefined },
  repartitioned: boolean,
  issues: Issues,
): TablePlan[] {
  const tables = new Map<string, TablePlan>();
  const reserved = new Map<string, string>(job.inputTopics.map((t) => [t, 'an input topic']));
  if (job.outputTopic !== undefined) reserved.set(job.outputTopic, 'the output topic');
  if (job.name !== undefined) {
    for (const suffix of ['dlq', 'repartition', 'changelog'])
      reserved.set(`${job.name}-${suffix}`, `the job's own ${suffix} topic`);
  }
  let keyBy: string | undefined;
  let keyBys = 0;
  for (const op of ops) {
    if (op.kind === 'keyBy') {
      keyBy ??= op.label;
      keyBys++;
    }
    const table = op.join?.table;
    if (!table) continue;
    const known = tables.get(table.topic);
    if (known && (known.kind !== table.kind || known.format !== table.format)) {
      issues.push(
        `pipeline: ${op.label}: table "${table.topic}" is declared twice, as ${known.kind} ${known.format} and as ${table.kind} ${table.format}`,
      );
    } else if (!known) {
      const role = reserved.get(table.topic);
      if (role) issues.push(`pipeline: ${op.label}: table "${table.topic}" is ${role}`);
      tables.set(table.topic, table);
    }
    // Before any keyBy the key is the Kafka key, which chose the input partition; after the keyBy that
    // re-partitions for a window it is the key that chose the repartition partition. Nowhere else.
    const coPartitioned = keyBys === 0 || (repartitioned && keyBys === 1);
    if (table.kind === 'partitioned' && !coPartitioned) {
      issues.push(
        `pipeline: ${op.label} joins the partitioned table "${table.topic}" after ${keyBy}, which does not re-partition the stream (no window follows): the table's partitions are not those of the key; join before the keyBy, or declare the table { kind: 'global' }`,
      );
    }
  }
  return [...tables.values()];
}

/**
 * The test driver of `sluice/testing` (Kafka Streams' TopologyTestDriver): a job's tasks run in the
 * caller's thread, on the records a test sends, one batch at a time, at a clock the test moves.
 *
 * What it shares with the service is everything between a fetched record and a published one: sent
 * records are packed as the receiver packs a fetch (`packMessages`), buffered and cut as the
 * scheduler cuts the buffer (`BufferQueue`, `maxBatchRecords` over all partitions), and processed by
 * the tasks the workers build (`createTask`, one per partition, restored from an empty changelog)
 * with a real `TaskContext`; a re-keyed job's shuffle writers hand their repartition blocks and
 * stream-time control records to the shuffle readers as records of the repartition topic, in the
 * sink's layout. Outputs and dead letters are decoded from the bytes the tasks wrote. What it leaves
 * out is Kafka and the threads: no commits, no changelog topic, no transactions, no watchdog (a record
 * on which user code hangs hangs the test), no poison pills.
 *
 * One `runBatch()` runs both stages of a re-keyed job: the shuffle readers read what the writers wrote
 * in the same call. (The service reads it in its next batch, which it starts at once.)
 */
import { type JobPlan } from '../job/plan.ts';
import { Progress } from '../pool/progress.ts';
import { partitionId, type PartitionStart } from '../pool/protocol.ts';
import { type BufferQueue } from '../queue/buffer-queue.ts';
import { type Duration, parseDuration } from '../util/duration.ts';
import { createTask } from '../worker/create-task.ts';
import { type Task, type TaskContext, withoutRecordsFor } from '../worker/task.ts';
import { type SentRecord, type TestDeadLetter, type TestOutput, type TestRecord } from './test-records.ts';
import { type TestTableRecord, TestTables } from './test-tables.ts';
import { type DriverSettings, isLate, type Published, TestTopics } from './test-topics.ts';

/** What one batch did. */
export interface BatchResult extends Published {
  /** The batch's number: 1, 2, … */
  batch: number;
  /** The clock when it ran: its batch time and the wall-clock time its tasks saw. */
  time: number;
  /** Input records it processed. */
  records: number;
}

export interface RunOptions {
  /**
   * After the records are processed, move the clock until idle advancement has closed every window,
   * so that final results come out (see {@link JobDriver.flush}). @defaultValue true
   */
  flush?: boolean;
}

/** What {@link JobDriver.run} produced. */
export interface RunResult {
  batches: number;
  outputs: TestOutput[];
  deadLetters: TestDeadLetter[];
  late: TestDeadLetter[];
  /** Windows still open at the end (0 after a flush, unless the job's `idleTimeout` is 0). */
  openWindows: number;
}

/** Every task starts as the first owner of its partition: no commit, an empty changelog. */
const NO_COMMIT: PartitionStart = { committedOffset: null, metadata: null };
/** Clock steps a flush takes at most (a re-keyed job needs two: its upstream idles first). */
const FLUSH_ROUNDS = 4;

function isIterable(value: TestRecord | Iterable<TestRecord>): value is Iterable<TestRecord> {
  return typeof value === 'object' && value !== null && Symbol.iterator in value;
}

/** Drives a job's tasks in process. Created by `testJob()`. */
export class JobDriver {
  /** The job as compiled: topics, stages, window. */
  readonly plan: JobPlan;
  readonly #settings: DriverSettings;
  #now: number;
  readonly #topics: TestTopics;
  /** The tables the job's joins read: rows sent apply before the next batch. */
  readonly #tables: TestTables;
  /** The tasks of the input partitions (stage 1 of a re-keyed job), in the job's topic order. */
  readonly #inputTasks = new Map<string, Task>();
  /** A re-keyed job's shuffle readers, one per repartition partition. */
  readonly #readerTasks = new Map<string, Task>();
  /** Per partition, the offset after everything cut so far (what a task may commit up to). */
  readonly #positions = new Map<string, number>();
  #batches = 0;

  constructor(plan: JobPlan, settings: DriverSettings) {
    this.plan = plan;
    this.#settings = settings;
    this.#now = settings.startTime;
    const sources = plan.inputTopics.flatMap((topic) =>
      Array.from({ length: settings.partitions.get(topic) ?? 0 }, (_, p) => partitionId(topic, p)),
    );
    // As the service creates it: as many partitions as the largest input topic.
    const repartitionPartitions = Math.max(...settings.partitions.values());
    this.#topics = new TestTopics(plan, settings, repartitionPartitions);
    this.#tables = new TestTables(plan, repartitionPartitions);
    for (const [topic, rows] of Object.entries(settings.tables)) this.#tables.append(topic, rows, this.#now);
    const context: TaskContext = {
      plan,
      maxRecordBytes: settings.maxRecordBytes,
      sources,
      repartitionPartitions,
      progress: new Progress(),
      tables: this.#tables,
    };
    for (const topic of plan.inputTopics) {
      for (let p = 0; p < (settings.partitions.get(topic) ?? 0); p++) {
        this.#inputTasks.set(partitionId(topic, p), this.#startTask(context, topic, p));
      }
    }
    const repartition = plan.repartitionTopic;
    if (repartition !== undefined) {
      for (let p = 0; p < repartitionPartitions; p++) {
        this.#readerTasks.set(partitionId(repartition, p), this.#startTask(context, repartition, p));
      }
    }
  }

  /** A partition's task, as a worker builds and restores it. */
  #startTask(context: TaskContext, topic: string, partition: number): Task {
    // A task starts at the driver's clock, not the host's (a shuffle writer's idle clock starts then).
    const task = createTask(context, topic, partition, NO_COMMIT, this.#now);
    if (task.changelogPartition !== null) task.restore([]);
    task.restored();
    return task;
  }

  /** The clock, epoch ms: the batch time and wall-clock time of the next batch. */
  get now(): number {
    return this.#now;
  }

  /** Records sent (or written to the repartition topic) and not processed yet. */
  get pending(): number {
    return this.#topics.inputs.records + this.#topics.shuffle.records;
  }

  /** Open (key, window) entries over all tasks. */
  get openWindows(): number {
    let open = 0;
    for (const task of this.#inputTasks.values()) open += task.openWindows;
    for (const task of this.#readerTasks.values()) open += task.openWindows;
    return open;
  }

  /**
   * Appends records to the input partitions, as a producer would: each gets the next offset of its
   * partition (from 0). They are processed by the next batches. Nothing is appended when one of
   * them is refused (unknown topic, partition out of range, a value the job's format cannot hold).
   */
  send(records: TestRecord | Iterable<TestRecord>): SentRecord[] {
    return this.#topics.append(isIterable(records) ? [...records] : [records], this.#now);
  }

  /**
   * Sends records to one of the job's table topics (`table(topic)`): a row per key, `null` deleting it.
   * They apply before the next batch, in order, as the service catches its tables up before each batch.
   */
  sendTable(topic: string, records: TestTableRecord | Iterable<TestTableRecord>): void {
    const list =
      typeof records === 'object' && records !== null && Symbol.iterator in records ? [...records] : [records];
    this.#tables.append(topic, list as TestTableRecord[], this.#now);
  }

  /**
   * Moves the clock forward (milliseconds, or a duration such as `'30s'`) and returns it. Nothing runs:
   * the next batch sees the new time, as the service's next batch would — idle advancement depends on
   * the time only, so the empty batches the service runs meanwhile change nothing the next one misses.
   */
  advanceTime(by: Duration): number {
    const ms = parseDuration(by);
    if (ms === undefined) throw new RangeError(`advanceTime takes a duration such as 500, '10s' or '1m' (got ${by})`);
    this.#now += ms;
    return this.#now;
  }

  /**
   * Runs one batch at the clock's time: cuts at most `maxBatchRecords` of the records waiting (a fair
   * share per partition, oldest first) and runs every task that takes part — those with records, and
   * every aggregating task and shuffle writer, which take part in each batch (idle advancement,
   * stream-time reports). A re-keyed job's shuffle readers then run on what the writers wrote. The
   * clock does not move.
   */
  runBatch(): BatchResult {
    const batch: BatchResult = {
      batch: ++this.#batches,
      time: this.#now,
      records: 0,
      outputs: [],
      deadLetters: [],
      late: [],
    };
    this.#topics.publishDead(this.#tables.catchUp(), this.#now, batch);
    this.#runStage(this.#inputTasks, this.#topics.inputs, batch);
    if (this.#readerTasks.size > 0) this.#runStage(this.#readerTasks, this.#topics.shuffle, batch);
    return batch;
  }

  #runStage(tasks: ReadonlyMap<string, Task>, queue: BufferQueue, batch: BatchResult): void {
    const cut = queue.cut(this.#settings.maxBatchRecords);
    for (const [id, task] of tasks) {
      const raw = cut.get(id);
      if (raw === undefined && withoutRecordsFor(task.kind) === 'never') continue;
      if (raw !== undefined) this.#positions.set(id, raw.lastOffset + 1);
      // Caught up: nothing more is waiting for the partition, so it may count as idle.
      const caughtUp = queue.sizeOf(id).records === 0;
      const records = raw?.buffer ?? new ArrayBuffer(0);
      const result = task.process(records, this.#now, this.#now, caughtUp, undefined, this.#positions.get(id));
      if (task.kind !== 'shuffle-reader') batch.records += result.stats.recordsIn;
      this.#topics.publish(result, this.#now, batch);
    }
  }

  /** Runs batches until nothing is pending (at least one when `once`). */
  #drain(once: boolean): void {
    let batches = 0;
    while (this.pending > 0 || (once && batches === 0)) {
      this.runBatch();
      batches++;
    }
  }

  /**
   * Processes everything pending, then closes every window by idle advancement: moves the clock by
   * the job's `idleTimeout` or the window's size (a session's gap) plus its lateness, whichever is
   * longer, and runs a batch, until no window is open (a few rounds at most). Returns the windows
   * still open: a job whose `idleTimeout` is 0 never advances by the clock, and its windows close
   * only with later records.
   */
  flush(): number {
    this.#drain(false);
    const window = this.plan.window;
    if (window === undefined || window.idleTimeoutMs <= 0) return this.openWindows;
    // The last window ends at most its size (a session: its gap) after the stream time.
    const { assigner } = window;
    const extent = assigner.kind === 'session' ? assigner.gapMs : assigner.sizeMs;
    const step = Math.max(window.idleTimeoutMs, extent + window.latenessMs);
    for (let round = 0; round < FLUSH_ROUNDS && this.openWindows > 0; round++) {
      this.advanceTime(step);
      this.#drain(true);
    }
    return this.openWindows;
  }

  /**
   * Sends `records` (if any), runs batches until all of them went through the pipeline, and (unless
   * `flush: false`) flushes every window. Returns what these batches produced.
   */
  run(records?: TestRecord | Iterable<TestRecord>, options: RunOptions = {}): RunResult {
    const { published } = this.#topics;
    const from = { batches: this.#batches, outputs: published.outputs.length, dead: published.deadLetters.length };
    if (records !== undefined) this.send(records);
    this.#drain(true);
    if (options.flush ?? true) this.flush();
    const deadLetters = published.deadLetters.slice(from.dead);
    return {
      batches: this.#batches - from.batches,
      outputs: published.outputs.slice(from.outputs),
      deadLetters,
      late: deadLetters.filter(isLate),
      openWindows: this.openWindows,
    };
  }

  /** Every record published to the output topic so far, in publishing order. */
  outputs(): TestOutput[] {
    return this.#topics.published.outputs.slice();
  }

  /** Every dead letter so far (late records included), in publishing order. */
  deadLetters(): TestDeadLetter[] {
    return this.#topics.published.deadLetters.slice();
  }

  /** The late records so far: the dead letters with code `SLUICE_LATE_RECORD`. */
  late(): TestDeadLetter[] {
    return this.#topics.published.late.slice();
  }
}

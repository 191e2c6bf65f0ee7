/**
 * A real in-place upgrade from the version before the changelog (commit 9522667: window state in
 * memory, offsets held back to the earliest open window, a checkpoint `{"v":2,…}` in the commit
 * metadata, at-least-once) to the current one, for a re-keyed windowed job (count per page through
 * the repartition topic, test/fixtures/jobs/outage-windows.ts, the same file in both trees).
 *
 * The old version's sources are extracted from the repository's history into a temporary directory
 * (`git archive`, the repository itself untouched) and run as its own process, like the current one.
 * It processes the first part of the input — in event-time order per partition, synthetic event
 * times, no idle advancement — until it has committed checkpoints and emitted some windows while
 * others are open, and is stopped (SIGTERM as a rolling upgrade does; SIGKILL in the second case).
 * The current version takes over the same group and topics: its tasks find no changelog progress
 * but a checkpoint in the commit metadata, so they replay from the committed offset once and write
 * their state to the changelog. The rest of the input follows, then events that close every window
 * but their own, which stay open; a second restart of the current version restores those from the
 * changelog (nothing replayed) and emits them once the last events close them.
 *
 * Checked against a count per (page, window) recomputed from the input read back: every window
 * present, none with another value, nothing dead-lettered; a window emitted twice only once by the
 * old and once by the new version, and only if the old version's last checkpoints had not closed it
 * yet (it is at-least-once: a batch published but not committed); the new version emits none twice.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, test } from '@jest/globals';
import { ConfigResourceTypes } from 'kafkajs';
import { admin, onCleanup, uniqueName, waitFor } from '../helpers.ts';
import { metricValue, startService } from '../support/service.ts';
import { follow, newTopic, readAll, testProducer, type ReadRecord } from '../support/topics.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const OLD_COMMIT = '9522667';
const JOB = 'test/fixtures/jobs/outage-windows.ts';

const PARTITIONS = 8;
const PAGES = Array.from({ length: 12 }, (_, i) => `/page-${i}`);
const WINDOW_MS = 2_000;
const LATENESS_MS = 3_000;
/** Event time between two ticks; each tick is one event per input partition. */
const STEP_MS = 20;
const TICKS = 2_400;
/** Ticks sent per chunk, and the wall time between chunks (about 2,000 events a second). */
const CHUNK_TICKS = 20;
const CHUNK_EVERY_MS = 80;
/** The old version is stopped once this many ticks are sent (and it committed and emitted). */
const SWITCH_AFTER_TICKS = 900;
/** An arbitrary window-aligned origin of event time: idle advancement is off, wall time plays no part. */
const BASE = 1_700_000_000_000;
/** One event per page and partition here, after the input: they close every window of the input. */
const CLOSE_TS = BASE + TICKS * STEP_MS + 10_000;
/** One event per partition here, after the second restart: they close the CLOSE_TS windows. */
const END_TS = CLOSE_TS + 20_000;
const END_PAGE = '/end';
const SESSION_TIMEOUT = '6s';

interface PageView {
  page: string;
  ts: number;
  p: number;
  n: number;
}

interface Result {
  key: string | null;
  windowStart: number;
  windowEnd: number;
  value: number;
}

const windowOf = (ts: number): number => Math.floor(ts / WINDOW_MS) * WINDOW_MS;
const idOf = (page: string | null, windowStart: number): string => `${page}|${windowStart}`;

/** The events of one tick, one per input partition, in event-time order within each partition. */
function tick(n: number): PageView[] {
  return Array.from({ length: PARTITIONS }, (_, p) => ({
    page: PAGES[(n * 5 + p * 3) % PAGES.length]!,
    ts: BASE + n * STEP_MS + p,
    p,
    n,
  }));
}

let oldTree: string;
beforeAll(() => {
  oldTree = mkdtempSync(join(tmpdir(), `sluice-${OLD_COMMIT}-`));
  onCleanup(async () => rmSync(oldTree, { recursive: true, force: true }));
  const archive = execFileSync('git', ['archive', OLD_COMMIT], { cwd: root, maxBuffer: 256 * 1024 * 1024 });
  execFileSync('tar', ['-x', '-C', oldTree], { input: archive });
  symlinkSync(join(root, 'node_modules'), join(oldTree, 'node_modules'), 'dir');
}, 60_000);

/** Sends ticks in chunks at a steady pace, in order, one send at a time; stops at `until` ticks. */
class TickProducer {
  sent = 0;
  #until = 0;
  #loop: Promise<void> | undefined;
  readonly #send: (events: PageView[]) => Promise<unknown>;

  constructor(send: (events: PageView[]) => Promise<unknown>) {
    this.#send = send;
  }

  /** Sends ticks up to `until` (exclusive); resolves when they are all acknowledged. */
  run(until: number): Promise<void> {
    this.#until = until;
    this.#loop = (async () => {
      while (this.sent < this.#until) {
        const started = Date.now();
        const last = Math.min(this.sent + CHUNK_TICKS, this.#until);
        const events: PageView[] = [];
        for (let n = this.sent; n < last; n++) events.push(...tick(n));
        await this.#send(events);
        this.sent = last;
        await new Promise((r) => setTimeout(r, Math.max(0, CHUNK_EVERY_MS - (Date.now() - started))));
      }
    })();
    return this.#loop;
  }

  /** Stops after the chunk being sent; resolves once it is acknowledged. */
  async pause(): Promise<void> {
    this.#until = 0;
    await this.#loop;
  }
}

interface Commit {
  partition: number;
  offset: number;
  metadata: string | null;
}

async function commitsOf(groupId: string, topic: string): Promise<Commit[]> {
  const [offsets] = await (await admin()).fetchOffsets({ groupId, topics: [topic] });
  return (offsets?.partitions ?? []).map((p) => ({
    partition: p.partition,
    offset: Number(p.offset),
    metadata: p.metadata,
  }));
}

const isCheckpoint = (c: Commit): boolean => c.offset >= 0 && (c.metadata ?? '').startsWith('{"v":2');

const outputsOf = (records: ReadRecord[], topic: string): Array<ReadRecord & { result: Result }> =>
  records
    .filter((r) => r.topic === topic && r.value !== null)
    .map((r) => ({ ...r, result: JSON.parse(r.value!.toString()) as Result }));

describe('upgrade in place from state in commit metadata (9522667) to the changelog', () => {
  test.each(['SIGTERM', 'SIGKILL'] as const)(
    'the old version is stopped with %s: every window exact, replayed once from the checkpoint, then restored from the changelog',
    async (signal) => {
      const input = await newTopic('upgrade-in', PARTITIONS);
      const output = uniqueName('upgrade-out');
      const job = uniqueName('upgrade');
      const repartition = `${job}-repartition`;
      const changelog = `${job}-changelog`;
      const dlq = `${job}-dlq`;
      const env = {
        TEST_JOB_NAME: job,
        TEST_INPUT: input,
        TEST_OUTPUT: output,
        TEST_WINDOW_MS: String(WINDOW_MS),
        TEST_LATENESS_MS: String(LATENESS_MS),
        TEST_IDLE_MS: '0',
        TEST_BATCH_INTERVAL_MS: '250',
        SLUICE_SESSION_TIMEOUT: SESSION_TIMEOUT,
      };
      const producer = await testProducer();
      const send = (events: PageView[]): Promise<unknown> =>
        producer.send({
          topic: input,
          acks: -1,
          messages: events.map((e) => ({ partition: e.p, key: e.page, value: JSON.stringify(e) })),
        });
      const ticks = new TickProducer(send);

      // The old version, on the first part of the input.
      const old = await startService({ root: oldTree, job: JOB, env });
      onCleanup(() => old.stop('SIGKILL'));
      await old.waitReady();
      const seen = await follow([output, dlq], 'upgrade-reader');
      const phaseOne = ticks.run(TICKS);
      const atSwitch = await waitFor(
        'the old version committed checkpoints and emitted windows',
        async () => {
          if (ticks.sent < SWITCH_AFTER_TICKS) return undefined;
          const commits = await commitsOf(job, repartition);
          const checkpoints = commits.filter(isCheckpoint);
          if (checkpoints.length === 0 || outputsOf(seen.records, output).length === 0) return undefined;
          return { checkpoints: checkpoints.length };
        },
        60_000,
      );
      // Stopped while the input still flows: the old version may have records buffered, a batch
      // in flight, results published whose commit is not made (SIGKILL).
      const oldMetrics = await old.metrics();
      const sentByOld = ticks.sent;
      const stopped = await old.stop(signal);
      await ticks.pause();
      await phaseOne;
      expect(signal === 'SIGTERM' ? stopped.code : stopped.signal).toBe(signal === 'SIGTERM' ? 0 : 'SIGKILL');
      const oldCommits = await commitsOf(job, repartition);
      const checkpoints = oldCommits.filter(isCheckpoint);
      // What the checkpoints leave to replay: from the committed offset up to their end `e`.
      const marks = checkpoints.map((c) => ({ ...c, ...(JSON.parse(c.metadata!) as { e: number; s?: number }) }));
      const heldBack = marks.reduce((n, c) => n + c.e - c.offset, 0);
      // A window whose end + lateness every task's checkpointed stream time `s` had reached was closed,
      // and emitted, before the last commit of every task: no restart may emit it again. Above that,
      // the old version may have emitted a window in a batch it did not commit (at-least-once).
      const committedClosedBelow =
        marks.length === oldCommits.length && oldCommits.length === PARTITIONS
          ? Math.min(...marks.map((c) => c.s ?? -Infinity))
          : -Infinity;
      const outputEnds = new Map(
        (await (await admin()).fetchTopicOffsets(output)).map((o) => [o.partition, Number(o.high)]),
      );
      const changelogBefore = (await (await admin()).listTopics()).includes(changelog);

      // The current version takes over the group and the topics; the rest of the input follows.
      const first = await startService({ job: JOB, env });
      onCleanup(() => first.stop('SIGKILL'));
      await first.waitReady();
      await ticks.run(TICKS);
      const close: PageView[] = [];
      for (let p = 0; p < PARTITIONS; p++)
        PAGES.forEach((page, k) => close.push({ page, ts: CLOSE_TS + k, p, n: TICKS }));
      await send(close);

      // Every window of the input is closed by the CLOSE_TS events, which stay open themselves.
      const tickWindows = new Set<string>();
      for (let n = 0; n < TICKS; n++) for (const e of tick(n)) tickWindows.add(idOf(e.page, windowOf(e.ts)));
      await waitFor(
        'a result for every window of the input',
        () => {
          const ids = new Set(outputsOf(seen.records, output).map((r) => idOf(r.result.key, r.result.windowStart)));
          return [...tickWindows].every((id) => ids.has(id)) ? true : undefined;
        },
        60_000,
      ).catch(() => undefined); // the comparison below says what is missing
      // Caught up with every CLOSE_TS event in its state, so the second restart has open windows to restore.
      const firstSettled = await waitFor(
        'the first new process caught up, holding only the CLOSE_TS windows',
        async () => {
          const metrics = await first.metrics();
          const lag = metricValue(metrics, 'sluice_consumer_lag_records');
          return metricValue(metrics, 'sluice_open_windows') === PAGES.length && lag === 0 ? true : undefined;
        },
        30_000,
      ).catch(() => false);
      const firstMetrics = await first.metrics();
      const changelogConfig = await (
        await admin()
      ).describeConfigs({
        resources: [{ type: ConfigResourceTypes.TOPIC, name: changelog, configNames: ['cleanup.policy'] }],
        includeSynonyms: false,
      });
      const cleanupPolicy = changelogConfig.resources[0]?.configEntries[0]?.configValue ?? null;
      expect((await first.stop('SIGTERM')).code).toBe(0);

      // A second restart of the current version: restored from the changelog, nothing replayed.
      const second = await startService({ job: JOB, env });
      onCleanup(() => second.stop('SIGKILL'));
      await second.waitReady();
      await send(Array.from({ length: PARTITIONS }, (_, p) => ({ page: END_PAGE, ts: END_TS, p, n: TICKS + 1 })));
      await waitFor(
        'a result for every CLOSE_TS window',
        () => {
          const ids = new Set(outputsOf(seen.records, output).map((r) => idOf(r.result.key, r.result.windowStart)));
          return PAGES.every((page) => ids.has(idOf(page, windowOf(CLOSE_TS)))) ? true : undefined;
        },
        30_000,
      ).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 1_500)); // repeats arriving late are seen too
      const secondMetrics = await second.metrics();
      expect((await second.stop('SIGTERM')).code).toBe(0);
      await seen.stop();

      // The reference: a count per (page, window) of the input read back, but for the END_TS events.
      const inputRead = await readAll(input);
      const events = inputRead.map((r) => JSON.parse(r.value!.toString()) as PageView);
      expect(events.length).toBe(TICKS * PARTITIONS + PAGES.length * PARTITIONS + PARTITIONS);
      const expected = new Map<string, number>();
      for (const e of events) {
        if (e.page === END_PAGE) continue;
        const id = idOf(e.page, windowOf(e.ts));
        expected.set(id, (expected.get(id) ?? 0) + 1);
      }

      // The comparison, each result as emitted by the old version (before the switch) or the new.
      const results = outputsOf(seen.records, output);
      const byOld = (r: ReadRecord): boolean => r.offset < (outputEnds.get(r.partition) ?? 0);
      const copies = new Map<string, { old: number[]; current: number[] }>();
      for (const r of results) {
        const id = idOf(r.result.key, r.result.windowStart);
        const entry = copies.get(id) ?? { old: [], current: [] };
        (byOld(r) ? entry.old : entry.current).push(r.result.value);
        copies.set(id, entry);
      }
      const missing = [...expected.keys()].filter((id) => !copies.has(id));
      const wrong = [...copies]
        .filter(([id, c]) => [...c.old, ...c.current].some((v) => v !== expected.get(id)))
        .map(([id, c]) => ({ id, expected: expected.get(id) ?? null, ...c }));
      const acrossSwitch = [...copies]
        .filter(([, c]) => c.old.length === 1 && c.current.length === 1)
        .map(([id, c]) => ({ id, ...c }));
      const mayRepeat = (id: string): boolean =>
        Number(id.split('|')[1]) + WINDOW_MS + LATENESS_MS > committedClosedBelow;
      const repeatedAfterCommit = acrossSwitch.filter((d) => !mayRepeat(d.id));
      const repeated = [...copies]
        .filter(([, c]) => c.old.length > 1 || c.current.length > 1)
        .map(([id, c]) => ({ id, ...c }));
      const emittedByOld = [...copies.values()].filter((c) => c.old.length > 0).length;
      // The windows of the input sent before the old version was stopped that it did not emit.
      const givenToOld = new Set<string>();
      for (let n = 0; n < sentByOld; n++) for (const e of tick(n)) givenToOld.add(idOf(e.page, windowOf(e.ts)));
      const notEmittedByOld = [...givenToOld].filter((id) => !(copies.get(id)?.old.length ?? 0)).length;
      const letters = seen.records.filter((r) => r.topic === dlq);

      const replayed = metricValue(firstMetrics, 'sluice_records_replayed_total');
      const restoredFirst = metricValue(firstMetrics, 'sluice_state_restored_records_total');
      const duplicatesFirst = metricValue(firstMetrics, 'sluice_records_duplicate_total');
      const restoredSecond = metricValue(secondMetrics, 'sluice_state_restored_records_total');
      const replayedSecond = metricValue(secondMetrics, 'sluice_records_replayed_total');
      const skippedSecond = metricValue(secondMetrics, 'sluice_records_skipped_total');
      const oldOpen = metricValue(oldMetrics, 'sluice_open_windows');
      console.log(
        [
          `upgrade ${OLD_COMMIT} → current, old stopped with ${signal}: windows expected ${expected.size}, missing ${missing.length}, wrong ${wrong.length}, ` +
            `emitted by both versions ${acrossSwitch.length} (${repeatedAfterCommit.length} of them closed in the old checkpoints), repeated by one ${repeated.length}, dead letters ${letters.length}; ` +
            `old: ${sentByOld * PARTITIONS} events sent, ${emittedByOld} windows emitted, ${oldOpen} open, checkpoints on ${checkpoints.length}/${oldCommits.length} partitions ${heldBack} offsets behind their end; ` +
            `first new: replayed ${replayed}, restored ${restoredFirst}; second new: restored ${restoredSecond}, replayed ${replayedSecond}`,
          `old version: checkpointed stream times ${JSON.stringify(marks.map((c) => (c.s === undefined ? null : c.s - BASE)))} ms after the origin; stopped after ${sentByOld} of ${TICKS} ticks; checkpoints seen first on ${atSwitch.checkpoints} partitions; windows of the input sent before its stop it did not emit ${notEmittedByOld}; changelog topic before the upgrade: ${changelogBefore}`,
          `first new process: caught up ${firstSettled}, upstream duplicates dropped ${duplicatesFirst}; ${changelog} cleanup.policy=${cleanupPolicy}; second: skipped ${skippedSecond}; results read ${results.length}`,
          `emitted by both (first 8): ${JSON.stringify(acrossSwitch.slice(0, 8))}`,
          `wrong (first 8): ${JSON.stringify(wrong.slice(0, 8))}`,
          `missing (first 8): ${JSON.stringify(missing.slice(0, 8).map((id) => [id, expected.get(id)]))}`,
          `repeated by one version (first 8): ${JSON.stringify(repeated.slice(0, 8))}`,
        ].join('\n  '),
      );

      // One comparison, so that a failure shows every part that is off.
      expect({
        windowsEmittedByOld: emittedByOld > 0,
        windowsOpenAtSwitch: oldOpen > 0 && notEmittedByOld > 0,
        checkpointsAtSwitch: checkpoints.length > 0,
        changelogBeforeUpgrade: changelogBefore,
        missingWindows: missing.length,
        wrongWindows: wrong.length,
        repeatedByOneVersion: repeated.length,
        repeatedAfterOldCheckpoint: repeatedAfterCommit.length,
        deadLetters: letters.length,
        replayedByFirst: replayed > 0,
        firstCaughtUp: firstSettled,
        changelogCompacted: cleanupPolicy,
        restoredBySecond: restoredSecond > 0,
        replayedBySecond: replayedSecond,
      }).toEqual({
        windowsEmittedByOld: true,
        windowsOpenAtSwitch: true,
        checkpointsAtSwitch: true,
        changelogBeforeUpgrade: false,
        missingWindows: 0,
        wrongWindows: 0,
        repeatedByOneVersion: 0,
        repeatedAfterOldCheckpoint: 0,
        deadLetters: 0,
        replayedByFirst: true,
        firstCaughtUp: true,
        changelogCompacted: 'compact',
        restoredBySecond: true,
        replayedBySecond: 0,
      });
    },
    150_000,
  );
});

/**
 * Builds a partition's task for its role (see task.ts), once per partition and restart. `wallNow`:
 * the wall-clock time it starts at (a shuffle writer's idle clock starts then).
 */
import { type PartitionStart } from '../pool/protocol.ts';
import { ShuffleReaderTask } from './shuffle-reader-task.ts';
import { ShuffleWriterTask } from './shuffle-writer-task.ts';
import { StatelessTask } from './stateless-task.ts';
import { taskKindFor, type Task, type TaskContext } from './task.ts';
import { WindowedTask } from './windowed-task.ts';

export function createTask(
  ctx: TaskContext,
  topic: string,
  partition: number,
  start: PartitionStart,
  wallNow = Date.now(),
): Task {
  switch (taskKindFor(ctx.plan, topic)) {
    case 'stateless':
      return new StatelessTask(ctx, topic, partition, start);
    case 'windowed':
      return new WindowedTask(ctx, topic, partition, start);
    case 'shuffle-writer':
      return new ShuffleWriterTask(ctx, topic, partition, start, wallNow);
    case 'shuffle-reader':
      return new ShuffleReaderTask(ctx, topic, partition, start);
  }
}

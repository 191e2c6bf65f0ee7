/**
 * The state store of an aggregating task, chosen by the assigner's kind: `WindowStore` for tumbling
 * and sliding windows (aligned ranges, one slot per start), `SessionStore` for session windows (ranges
 * from the records, merged per key). The task sees only their common surface (`state-store.ts`).
 */
import type { ResolvedWindowAssigner } from './assigners.ts';
import { SessionStore } from './session-store.ts';
import type { StoreOptions, WindowStateStore } from './state-store.ts';
import { WindowStore } from './window-store.ts';

export type StateStoreOptions = StoreOptions<ResolvedWindowAssigner>;

export function createStateStore(options: StateStoreOptions): WindowStateStore {
  const { assigner } = options;
  return assigner.kind === 'session'
    ? new SessionStore({ ...options, assigner })
    : new WindowStore({ ...options, assigner });
}

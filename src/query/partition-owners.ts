/**
 * Which replica owns each partition of the job, as the consumer group says: the admin client's
 * `describeGroups` gives every member's metadata (the HTTP address it advertises, `member-address.ts`)
 * and its assignment. The answer is cached: dropped by `invalidate()` on every rebalance (the caller
 * sees this replica's group join, which every rebalance includes) and read again on a miss — a
 * partition nobody owns in the cache, or an owner that turned out not to own it — at most once per
 * `minRefreshMs`, and one read at a time.
 */
import { type Admin } from 'kafkajs';
import type pino from 'pino';
import { membersOf } from '../kafka/member-address.ts';
import { partitionId } from '../pool/protocol.ts';

export type OwnerLookup = { kind: 'owner'; url: string } | { kind: 'unknown'; reason: string };

interface Snapshot {
  /** `topic:partition` → the owning member's URL (undefined: it advertises none) and id. */
  owners: Map<string, { url: string | undefined; memberId: string }>;
  /** The group's state when described; only a Stable group's assignment is complete. */
  state: string;
  at: number;
}

export interface PartitionOwnersOptions {
  /** A miss reads the group again only when the last read is at least this old. */
  minRefreshMs?: number;
  now?: () => number;
}

export class PartitionOwners {
  readonly #admin: Pick<Admin, 'describeGroups'>;
  readonly #groupId: string;
  readonly #logger: pino.Logger;
  readonly #minRefreshMs: number;
  readonly #now: () => number;
  #snapshot: Snapshot | undefined;
  #reading: Promise<Snapshot | undefined> | undefined;
  /** Bumped by invalidate(): a read begun before it must not fill the cache. */
  #generation = 0;

  constructor(
    admin: Pick<Admin, 'describeGroups'>,
    groupId: string,
    logger: pino.Logger,
    options: PartitionOwnersOptions = {},
  ) {
    this.#admin = admin;
    this.#groupId = groupId;
    this.#logger = logger;
    this.#minRefreshMs = options.minRefreshMs ?? 250;
    this.#now = options.now ?? Date.now;
  }

  /** The group rebalanced: the cached owners are stale. They are read again at once, in the background. */
  invalidate(): void {
    this.#generation++;
    this.#snapshot = undefined;
    this.#reading = undefined;
    void this.#read();
  }

  /**
   * The URL of the replica that owns the partition. `stale`: the caller found the cached owner wrong
   * (it did not own the partition), so the group is read again (unless it was just read).
   */
  async ownerOf(topic: string, partition: number, { stale = false }: { stale?: boolean } = {}): Promise<OwnerLookup> {
    const id = partitionId(topic, partition);
    let snapshot = this.#snapshot ?? (await this.#read());
    if (snapshot && (stale || !snapshot.owners.get(id)?.url) && this.#now() - snapshot.at >= this.#minRefreshMs) {
      snapshot = await this.#read();
    }
    if (!snapshot) return { kind: 'unknown', reason: `consumer group ${this.#groupId} could not be described` };
    const owner = snapshot.owners.get(id);
    if (owner?.url) return { kind: 'owner', url: owner.url };
    if (snapshot.state !== 'Stable') {
      return { kind: 'unknown', reason: `consumer group ${this.#groupId} is rebalancing (${snapshot.state})` };
    }
    if (!owner) return { kind: 'unknown', reason: `no replica is assigned ${id} yet` };
    return {
      kind: 'unknown',
      reason: `the replica that owns ${id} (member ${owner.memberId}) advertises no HTTP address (a version without queryable state)`,
    };
  }

  /** Describes the group (one read at a time); undefined when that failed. */
  #read(): Promise<Snapshot | undefined> {
    if (this.#reading) return this.#reading;
    const generation = this.#generation;
    const reading = this.#describe().then(
      (snapshot) => {
        if (generation === this.#generation) this.#snapshot = snapshot;
        return snapshot;
      },
      (error: unknown) => {
        this.#logger.warn({ err: error, groupId: this.#groupId }, 'could not describe the consumer group');
        return undefined;
      },
    );
    const settled = reading.finally(() => {
      if (this.#reading === settled) this.#reading = undefined;
    });
    this.#reading = settled;
    return settled;
  }

  async #describe(): Promise<Snapshot> {
    const at = this.#now();
    const { groups } = await this.#admin.describeGroups([this.#groupId]);
    const group = groups.find((g) => g.groupId === this.#groupId);
    if (!group) throw new Error(`group ${this.#groupId} is not in the describeGroups answer`);
    const owners: Snapshot['owners'] = new Map();
    for (const member of membersOf(group)) {
      for (const [topic, partitions] of Object.entries(member.assignment)) {
        for (const p of partitions) owners.set(partitionId(topic, p), { url: member.url, memberId: member.memberId });
      }
    }
    return { owners, state: group.state, at };
  }
}

/**
 * Records that hung or killed their worker. The first failure on a record is bad luck as far as we
 * know: its partition is rewound and replayed. When the replay fails on the same record again, it is
 * a poison pill: the next replay dead-letters it (with the failure's code) instead of running user
 * code on it, and the partition moves on. Spark retries a task a few times, then fails the job;
 * Sluice gives up on the record, never on the job.
 */
import { type Poison } from '../pool/protocol.ts';
import { type Suspect } from '../pool/worker-pool.ts';
import { partitionId } from '../pool/protocol.ts';

interface Strike extends Poison {
  strikes: number;
}

/** Failures on the same record before it is dead-lettered. */
export const STRIKES = 2;

export class PoisonPills {
  readonly #strikes = new Map<string, Strike>();

  /** A worker failed while `suspect` was in user code; returns the strikes against it. */
  failed(suspect: Suspect, code: Poison['code'], message: string): number {
    const id = partitionId(suspect.topic, suspect.partition);
    const known = this.#strikes.get(id);
    const same = known !== undefined && known.offset === suspect.offset && known.sub === suspect.sub;
    const strike: Strike = {
      offset: suspect.offset,
      sub: suspect.sub,
      code,
      message,
      strikes: same ? known.strikes + 1 : 1,
    };
    this.#strikes.set(id, strike);
    return strike.strikes;
  }

  /** The records of a partition not to run again. */
  forPartition(id: string): Poison[] | undefined {
    const strike = this.#strikes.get(id);
    if (!strike || strike.strikes < STRIKES) return undefined;
    return [{ offset: strike.offset, sub: strike.sub, code: strike.code, message: strike.message }];
  }

  /** The partition's processing got past `position` (its next offset): what lay behind is settled. */
  passed(id: string, position: number | undefined): void {
    const strike = this.#strikes.get(id);
    if (strike && position !== undefined && position > strike.offset) this.#strikes.delete(id);
  }

  /** Forgets a partition (revoked): its next owner starts with a clean slate. */
  forget(id: string): void {
    this.#strikes.delete(id);
  }
}

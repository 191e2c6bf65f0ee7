/**
 * Nexmark q3, local item suggestion: who sells in OR, ID or CA in category 10, and which auctions — name,
 * city and state of the seller, id of the auction.
 *
 * The suite joins two streams (a regular join: both sides kept for ever, a match emitted whenever the
 * second side arrives). Here persons are a table (`table()`: the persons topic, keyed by person id,
 * compacted) and the auctions stream, keyed by seller and co-partitioned with it, looks its seller up: an
 * auction sees the persons read before its batch. The results are the suite's when every seller's person
 * is written before the auction (bench/nexmark/write.ts does so); an auction whose person came later
 * would be dropped here, where the suite would still emit it when the person arrived.
 */
import { defineJob, table } from 'sluice';
import type { Auction, Person } from '../model.ts';
import { common, settingsFromEnv, type QuerySettings } from './common.ts';

export interface LocalItem {
  name: string;
  city: string;
  state: string;
  id: number;
}

export function q3(s: QuerySettings) {
  const persons = table<Person>(s.persons);
  return defineJob<Auction>({
    ...common(s),
    input: { topics: [s.auctions] },
    pipeline: (auctions) =>
      auctions
        .filter((a) => a.category === 10)
        .joinTable(persons, (a, p): LocalItem => ({ name: p.name, city: p.city, state: p.state, id: a.id }))
        .filter((r) => r.state === 'OR' || r.state === 'ID' || r.state === 'CA'),
    output: { topic: s.output },
  });
}

export default q3(settingsFromEnv('q3'));

/**
 * Partition → worker affinity: a partition always goes to the same worker index, so its state and
 * ordering stay on one thread (a replaced worker keeps its index). A plain function, swappable.
 */
export type Router = (topic: string, partition: number, workers: number) => number;

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** Consecutive partitions of a topic land on consecutive workers. */
export const stickyRouter: Router = (topic, partition, workers) => (fnv1a(topic) + partition) % workers;

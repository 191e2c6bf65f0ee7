/**
 * Prints the model's first N events as JSON lines, to compare with the upstream Java generator
 * (check.sh): `node bench/nexmark/upstream/dump.ts <events> [rate] [outOfOrderGroupSize] [seed]`.
 */
import { generateEvents } from '../model.ts';

const [events = '20000', rate = '10000', group = '1', seed = '42'] = process.argv.slice(2);
const config = {
  baseTime: Date.UTC(2024, 0, 1),
  firstEventRate: Number(rate),
  outOfOrderGroupSize: Number(group),
  seed: Number(seed),
};
const lines: string[] = [];
for (const e of generateEvents(Number(events), config)) lines.push(JSON.stringify(e));
process.stdout.write(`${lines.join('\n')}\n`);

/**
 * `npm run bench:profile-summary -- <file.cpuprofile>...`: where a thread's time went, by stage of
 * Sluice's hot path (receive, queue, scheduling, transfer to workers, deserialize and operators,
 * windows, repartition blocks, publish, commit) and by function. Reads the `.cpuprofile` files that
 * `npm run bench -- --profile` writes (one per thread) and attributes each sample to the innermost
 * frame of a known area; kafkajs's protocol code and built-ins (JSON.parse, TextDecoder, Buffer) are
 * charged to the area that called them.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  parent?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Areas in the order they are tested against a frame; the first frame (from the leaf up) that matches wins. */
const AREAS: Array<[string, (frame: CallFrame) => boolean]> = [
  ['(idle)', (f) => f.functionName === '(idle)'],
  ['(garbage collector)', (f) => f.functionName === '(garbage collector)'],
  ['(program)', (f) => f.functionName === '(program)'],
  ['windows', (f) => /\/(src|dist)\/windows\//.test(f.url)],
  ['repartition blocks', (f) => /\/(src|dist)\/wire\/repartition-block/.test(f.url)],
  ['record codec (thread transfer)', (f) => /\/(src|dist)\/wire\/record-codec/.test(f.url)],
  ['job code (user pipeline)', (f) => f.url.includes('/jobs/')],
  ['deserialize + operators (tasks)', (f) => /\/(src|dist)\/worker\//.test(f.url)],
  ['worker pool / messaging', (f) => /\/(src|dist)\/pool\//.test(f.url)],
  ['kafkajs produce (publish)', (f) => f.url.includes('kafkajs/src/producer')],
  ['publish (sink)', (f) => /\/(src|dist)\/sink\//.test(f.url)],
  ['kafkajs consume (fetch, decode)', (f) => f.url.includes('kafkajs/src/consumer')],
  ['receiver', (f) => /\/(src|dist)\/receiver\//.test(f.url)],
  ['buffer queue', (f) => /\/(src|dist)\/queue\//.test(f.url)],
  ['scheduler (cut, pack, commit)', (f) => /\/(src|dist)\/scheduler\//.test(f.url)],
  ['http + metrics', (f) => /\/(src|dist)\/(http|metrics)\/|node_modules\/(fastify|prom-client|pino)/.test(f.url)],
  ['kafkajs network (request encode, send)', (f) => f.url.includes('kafkajs/src/network')],
  ['kafkajs other', (f) => f.url.includes('kafkajs/')],
];

/** Frames that do work for whoever called them: charged to the caller's area. */
const PASS_THROUGH = /^(node:|$)|kafkajs\/src\/(protocol|utils)\//;

function areaOf(stack: CallFrame[]): string {
  for (const frame of stack) {
    if (PASS_THROUGH.test(frame.url) && !frame.functionName.startsWith('(')) continue;
    for (const [name, test] of AREAS) if (test(frame)) return name;
  }
  const leaf = stack[0];
  if (leaf?.url.includes('kafkajs/')) return 'kafkajs protocol (async encode, decode)';
  return 'other';
}

function pct(part: number, total: number): string {
  return `${((100 * part) / total).toFixed(1).padStart(5)} %`;
}

function summarize(path: string): void {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  for (const n of profile.nodes) for (const c of n.children ?? []) byId.get(c)!.parent = n.id;
  const areaCache = new Map<number, string>();
  const areas = new Map<string, number>();
  const functions = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    let area = areaCache.get(id);
    if (area === undefined) {
      const stack: CallFrame[] = [];
      for (let n = byId.get(id); n; n = n.parent === undefined ? undefined : byId.get(n.parent))
        stack.push(n.callFrame);
      area = areaOf(stack);
      areaCache.set(id, area);
    }
    areas.set(area, (areas.get(area) ?? 0) + dt);
    const f = byId.get(id)!.callFrame;
    const where =
      f.url === '' ? '' : ` ${f.url.replace(/^.*?\/(node_modules|src|dist|bench)\//, '$1/')}:${f.lineNumber + 1}`;
    const name = `${f.functionName || '(anonymous)'}${where}`;
    functions.set(name, (functions.get(name) ?? 0) + dt);
  });
  console.log(`\n${basename(path)}: ${(total / 1e6).toFixed(1)} s sampled`);
  console.log('  by area (self time, charged to the innermost known area):');
  for (const [name, t] of [...areas].sort((a, b) => b[1] - a[1])) console.log(`    ${pct(t, total)}  ${name}`);
  console.log('  top functions (self time):');
  for (const [name, t] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
    console.log(`    ${pct(t, total)}  ${name}`);
  }
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: npm run bench:profile-summary -- <file.cpuprofile>...');
  process.exit(2);
}
for (const file of files) summarize(file);

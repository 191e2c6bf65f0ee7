/**
 * Produces a live clickstream to Kafka:
 *
 *   node examples/generator/cli.ts --brokers 127.0.0.1:9092 --topic page-views --rate 2000 [--count N]
 *
 * Runs until Ctrl-C (or until `--count` records are sent). `--partitions N` creates the topic first
 * when it does not exist (brokers often have topic auto-creation off).
 */
import { parseArgs } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { runGenerator, type RunGeneratorOptions } from './clickstream.ts';

const USAGE = `usage: cli.ts [options]
  --brokers <list>        comma-separated bootstrap brokers (default: $KAFKA_BROKERS or 127.0.0.1:9092)
  --topic <name>          topic to produce to (default: page-views)
  --rate <n>              records per second (default: 2000)
  --count <n>             stop after n records (default: run until Ctrl-C)
  --partitions <n>        create the topic with n partitions if it does not exist
  --seed <n>              PRNG seed (default: 1)
  --users <n>             distinct users (default: 500)
  --pages <n>             distinct pages (default: 40)
  --out-of-order <f>      share of out-of-order records (default: 0.05)
  --late <f>              share of late records, 60-120 s behind (default: 0.002)
  --malformed <f>         share of records that are not valid JSON (default: 0.001)
  -h, --help              show this help`;

function numberOption(values: Record<string, string | boolean | undefined>, name: string): number | undefined {
  const raw = values[name];
  if (raw === undefined || typeof raw === 'boolean') return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) {
    console.error(`--${name} must be a non-negative number, got ${raw}\n${USAGE}`);
    process.exit(2);
  }
  return n;
}

const OPTIONS = {
  brokers: { type: 'string' },
  topic: { type: 'string', default: 'page-views' },
  rate: { type: 'string', default: '2000' },
  count: { type: 'string' },
  partitions: { type: 'string' },
  seed: { type: 'string' },
  users: { type: 'string' },
  pages: { type: 'string' },
  'out-of-order': { type: 'string' },
  late: { type: 'string' },
  malformed: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function parse(): ReturnType<typeof parseArgs<{ options: typeof OPTIONS; strict: true }>>['values'] {
  try {
    return parseArgs({ options: OPTIONS, strict: true }).values;
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    process.exit(2);
  }
}

const values = parse();

if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

const brokers = (values.brokers ?? process.env['KAFKA_BROKERS'] ?? '127.0.0.1:9092').split(',');
const topic = values.topic;
const partitions = numberOption(values, 'partitions');
if (partitions !== undefined) {
  const admin = new Kafka({ clientId: 'sluice-clickstream-admin', brokers, logLevel: logLevel.ERROR }).admin();
  await admin.connect();
  try {
    const created = await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: partitions }],
    });
    console.log(created ? `created topic ${topic} (${partitions} partitions)` : `topic ${topic} exists`);
  } finally {
    await admin.disconnect();
  }
}

const controller = new AbortController();
let interrupted = false;
const stop = (): void => {
  if (interrupted) return;
  interrupted = true;
  console.log(process.stdout.isTTY ? '\nstopping…' : 'stopping…');
  controller.abort();
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

const options: RunGeneratorOptions = {
  brokers,
  topic,
  ratePerSecond: numberOption(values, 'rate') ?? 2000,
  signal: controller.signal,
  onProgress: (stats) =>
    process.stdout.write(process.stdout.isTTY ? `\rsent ${stats.sent} records` : `sent ${stats.sent} records\n`),
};
const optional = {
  limit: numberOption(values, 'count'),
  seed: numberOption(values, 'seed'),
  users: numberOption(values, 'users'),
  pages: numberOption(values, 'pages'),
  outOfOrderFraction: numberOption(values, 'out-of-order'),
  lateFraction: numberOption(values, 'late'),
  malformedFraction: numberOption(values, 'malformed'),
};
for (const [name, value] of Object.entries(optional)) {
  if (value !== undefined) Object.assign(options, { [name]: value });
}

console.log(`producing ~${options.ratePerSecond} records/s to ${topic} at ${brokers.join(',')} (Ctrl-C to stop)`);
const stats = await runGenerator(options).catch((error: unknown) => {
  console.error(`\ngenerator failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
const kinds = Object.entries(stats.byKind)
  .map(([kind, n]) => `${kind} ${n}`)
  .join(', ');
console.log(`${process.stdout.isTTY ? '\n' : ''}sent ${stats.sent} records (${kinds})`);

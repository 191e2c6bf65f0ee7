import { type TestBroker } from './support/broker.ts';

export default async function globalTeardown(): Promise<void> {
  const broker = (globalThis as { __sluiceBroker?: TestBroker }).__sluiceBroker;
  const started = Date.now();
  await broker?.stop();
  if (broker) console.log(`[sluice tests] Kafka stopped in ${Date.now() - started} ms`);
}

/**
 * The process entry (`sluice run <job>`): the only module that touches signals and exit codes.
 * SIGTERM/SIGINT stop gracefully within SLUICE_SHUTDOWN_TIMEOUT; a second signal forces exit.
 */
import pino from 'pino';
import { App } from './app.ts';
import { resolveConfig, type ResolvedConfig } from './config/resolve.ts';
import { describeError, isSluiceError } from './errors.ts';
import { sizeProcessMemory } from './process-memory.ts';

const USAGE = 'usage: sluice run <job-module>\n  Configuration comes from environment variables (see README).';

function fail(message: string, code = 1): never {
  // One clear line, no stack trace: start-up errors are configuration errors. Messages of foreign
  // errors (a compiler's, a client library's) may span lines: fold them.
  process.stderr.write(`sluice: ${message.replace(/\s*\n\s*/g, ' ').trim()}\n`);
  process.exit(code);
}

export async function main(argv: string[]): Promise<void> {
  const [command, jobPath] = argv;
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (command !== 'run' || !jobPath) fail(USAGE, 2);

  let config: ResolvedConfig;
  try {
    config = resolveConfig(process.env);
  } catch (error) {
    fail(describeError(error).replace(/^ConfigError: /, ''));
  }
  // Configuration is checked first: a mistake is reported once, before the process starts again.
  sizeProcessMemory();
  const logger = pino({ level: config.logLevel, base: { service: 'sluice' } });

  let app: App;
  try {
    app = await App.create(config, jobPath, logger);
  } catch (error) {
    fail(isSluiceError(error) ? `[${error.code}] ${error.message}` : describeError(error));
  }

  let signals = 0;
  let exiting = false;
  /** Stops the service within the shutdown timeout and exits with `code`. */
  const stop = (code: number): void => {
    if (exiting) return;
    exiting = true;
    const timer = setTimeout(() => {
      logger.error({ timeoutMs: config.shutdownTimeoutMs }, 'graceful shutdown timed out');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    timer.unref();
    void app.close().then(() => process.exit(code));
  };
  const shutdown = (signal: string): void => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    logger.info({ signal }, 'shutting down');
    stop(0);
  };
  // A component failed beyond repair: stop and exit non-zero, so the orchestrator restarts us.
  app.onFatal = (error) => {
    logger.error({ err: error, code: error.code }, 'fatal error: stopping the service');
    process.stderr.write(`sluice: [${error.code}] ${error.message}\n`);
    stop(1);
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('unhandledRejection', (reason) => {
    logger.error({ err: reason }, 'unhandled rejection');
  });

  try {
    await app.start();
  } catch (error) {
    logger.error({ err: error }, 'start-up failed');
    await app.close().catch(() => undefined);
    fail(isSluiceError(error) ? `[${error.code}] ${error.message}` : describeError(error));
  }
}

await main(process.argv.slice(2));

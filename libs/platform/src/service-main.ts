import { ConfigError } from "./config.js";
import { createLogger, type Logger } from "./logger.js";
import { natsAuthFromEnv, natsCaFileFromEnv } from "./nats-auth.js";
import { joinStack } from "./stack-member.js";

export interface ServiceContext {
  logger: Logger;
  /** Registers something to undo on SIGTERM/SIGINT; undone in reverse order of registration. */
  onStop(what: string, fn: () => Promise<unknown>): void;
}

/**
 * What every service's main.ts does around its own wiring: on SIGTERM/SIGINT undo what was started, newest first
 * (also when the signal arrives during start-up: start-up finishes, then drains), and exit 0. Invalid settings exit 2
 * with the message naming the setting (never its value); any other start-up failure exits 1.
 */
export function runService(name: string, start: (ctx: ServiceContext) => Promise<void>): void {
  const logger = createLogger(name);
  const stops: { what: string; fn: () => Promise<unknown> }[] = [];
  let stopping = false;
  // The signal handlers exist before start() runs: a signal that arrives while start-up is still synchronous would
  // otherwise meet Node's default action and end the process without undoing anything. Handlers only run from the
  // event loop, so by then `startup` holds start()'s promise.
  let startup: Promise<void> = Promise.resolve();

  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, `${name} stopping`);
    await startup.catch(() => undefined);
    for (const s of stops.reverse()) {
      try {
        await s.fn();
      } catch (err) {
        logger.error({ step: s.what, err: (err as Error).message }, "error while stopping");
      }
    }
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  // Under `steward up`: stop the same way when `up` itself is gone.
  joinStack((reason) => void shutdown(reason));

  // A NATS seed (or CA file) that is set but empty, a placeholder or not a seed refuses to start, before anything else runs.
  startup = Promise.resolve()
    .then(() => void [natsAuthFromEnv(process.env), natsCaFileFromEnv(process.env)])
    .then(() => start({ logger, onStop: (what, fn) => stops.push({ what, fn }) }));
  startup.catch((err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    logger.fatal({ err: err instanceof Error ? err.message : String(err) }, `${name} failed to start`);
    process.exit(1);
  });
}

#!/usr/bin/env node
import { connectDb, connectNats, createLogger, createRegistry, initTracing, redactUrl } from "@steward/shared";
import { loadConfig } from "./config.js";
import { createPlanner } from "./planner.js";

const logger = createLogger("planner");

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const tracing = initTracing({ serviceName: "planner", otlpEndpoint: config.otlpEndpoint });
  const registry = createRegistry("planner");
  const nc = await connectNats(config.natsUrl, config.plannerId);
  const sql = connectDb(config.databaseUrl, { max: Math.max(5, config.workers * 2 + 2) });
  const planner = createPlanner({ config, sql, nc, logger, registry });
  const { port } = await planner.start();
  logger.info({ nats: redactUrl(config.natsUrl), api: `http://${config.httpHost}:${port}`, ollama: redactUrl(config.ollama.url) }, "planner running");

  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    await planner.stop();
    await nc.drain().catch(() => undefined);
    await sql.end({ timeout: 5 });
    await tracing.shutdown();
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  logger.fatal({ err: err instanceof Error ? err.message : String(err) }, "planner failed to start");
  process.exit(1);
});

#!/usr/bin/env node
import { ConfigError, connectDb, connectNats, createLogger, createRegistry, initTracing, redactUrl } from "@steward/shared";
import { loadConfig, SERVICE_NAME } from "./config.js";
import { createExecutor } from "./executor.js";

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(SERVICE_NAME);
  const tracing = initTracing({ serviceName: "steward-executor", otlpEndpoint: config.otlpEndpoint });
  const registry = createRegistry(SERVICE_NAME);
  const nc = await connectNats(config.natsUrl, `steward-executor-${config.executorId}`);
  const sql = connectDb(config.databaseUrl);
  logger.info({ nats: config.natsUrl, database: redactUrl(config.databaseUrl), executor_id: config.executorId }, "executor starting");
  const executor = createExecutor({ config, nc, sql, logger, registry });
  const { url } = await executor.start();
  console.log(`steward executor API on ${url} (metrics on ${url}/metrics)`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "executor stopping");
    await executor.stop();
    await nc.drain().catch(() => undefined);
    await sql.end({ timeout: 5 }).catch(() => undefined);
    await tracing.shutdown().catch(() => undefined);
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: Error) => {
  console.error(`executor failed to start: ${err.message}`);
  process.exit(1);
});

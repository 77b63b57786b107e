#!/usr/bin/env node
import { ConfigError, connectDb, connectNats, createLogger, createRegistry, initTracing, redactUrl } from "@steward/shared";
import { createAlerter } from "./alerter.js";
import { loadConfig, SERVICE_NAME } from "./config.js";

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
  const tracing = initTracing({ serviceName: "steward-alerter", otlpEndpoint: config.otlpEndpoint });
  const registry = createRegistry(SERVICE_NAME);
  const nc = await connectNats(config.natsUrl, `steward-alerter-${config.alerterId}`);
  const sql = connectDb(config.databaseUrl);
  logger.info({ nats: config.natsUrl, database: redactUrl(config.databaseUrl), executor: config.executorUrl, planner: config.plannerUrl ?? null }, "alerter starting");
  const alerter = createAlerter({ config, nc, sql, logger, registry });
  const { url } = await alerter.start();
  console.log(`steward alerter on ${url} (metrics on ${url}/metrics)`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "alerter stopping");
    await alerter.stop();
    await nc.drain().catch(() => undefined);
    await sql.end({ timeout: 5 }).catch(() => undefined);
    await tracing.shutdown().catch(() => undefined);
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: Error) => {
  console.error(`alerter failed to start: ${err.message}`);
  process.exit(1);
});

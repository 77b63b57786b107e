#!/usr/bin/env node
import { connectDb, connectNats, createLogger, createRegistry, initTracing, redactUrl, serveMetrics } from "@steward/shared";
import { loadSupervisorConfig } from "./config.js";
import { createEscalator } from "./escalate.js";
import { createSupervisor } from "./supervisor.js";

const logger = createLogger("supervisor");

async function main(): Promise<void> {
  const config = loadSupervisorConfig(process.env);
  const tracing = initTracing({ serviceName: "supervisor", otlpEndpoint: config.otlpEndpoint });
  const registry = createRegistry("supervisor");
  const nc = await connectNats(config.natsUrl, config.supervisorId);
  const sql = connectDb(config.databaseUrl);
  const escalator = config.escalation ? createEscalator({ ...config.escalation, logger, registry }) : undefined;
  const supervisor = createSupervisor({ config, nc, sql, logger, registry, escalator });
  await supervisor.start();
  const metrics = await serveMetrics(registry, config.metricsPort, config.metricsHost);
  logger.info({ nats: redactUrl(config.natsUrl), metrics: `http://${config.metricsHost}:${metrics.port}/metrics` }, "supervisor running");

  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    await supervisor.stop();
    await metrics.close();
    await nc.drain();
    await sql.end({ timeout: 5 });
    await tracing.shutdown();
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  logger.fatal({ err: err instanceof Error ? err.message : String(err) }, "supervisor failed to start");
  process.exit(1);
});

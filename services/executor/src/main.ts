#!/usr/bin/env node
import { connectDb } from "@steward/platform/db";
import { connectNats } from "@steward/platform/bus";
import { createRegistry, serveMetrics } from "@steward/platform/metrics";
import { initTracing } from "@steward/platform/tracing";
import { redactUrl } from "@steward/platform/config";
import { runService } from "@steward/platform/service-main";
import { loadConfig, SERVICE_NAME } from "./config.js";
import { createExecutor } from "./executor.js";

runService(SERVICE_NAME, async ({ logger, onStop }) => {
  const config = loadConfig(process.env);
  const tracing = initTracing({ component: "executor" });
  onStop("tracing", () => tracing.shutdown());
  const registry = createRegistry(SERVICE_NAME);
  const nc = await connectNats(config.natsUrl, `steward-executor-${config.executorId}`);
  onStop("nats", () => nc.drain());
  const sql = connectDb(config.databaseUrl);
  onStop("database", () => sql.end({ timeout: 5 }));
  logger.info({ nats: redactUrl(config.natsUrl), database: redactUrl(config.databaseUrl), executor_id: config.executorId }, "executor starting");
  // Metrics first, on their own listener (loopback by default): the API port never serves them.
  const served = await serveMetrics(registry, config.metricsPort, config.metricsHost);
  onStop("metrics", () => served.close());
  const metricsUrl = `http://${config.metricsHost.includes(":") ? `[${config.metricsHost}]` : config.metricsHost}:${served.port}/metrics`;
  const executor = createExecutor({ config, nc, sql, logger, registry });
  onStop("executor", () => executor.stop());
  const { url } = await executor.start();
  logger.info({ url: metricsUrl }, "serving metrics");
  console.log(`steward executor API on ${url} (metrics on ${metricsUrl})`);
});

#!/usr/bin/env node
import { connectDb } from "@steward/platform/db";
import { connectNats } from "@steward/platform/bus";
import { createRegistry, serveMetrics } from "@steward/platform/metrics";
import { initTracing } from "@steward/platform/tracing";
import { redactUrl } from "@steward/platform/config";
import { runService } from "@steward/platform/service-main";
import { loadSupervisorConfig } from "./config.js";
import { createEscalator } from "./escalate.js";
import { createSupervisor } from "./supervisor.js";

runService("supervisor", async ({ logger, onStop }) => {
  const config = loadSupervisorConfig(process.env);
  const tracing = initTracing({ component: "supervisor" });
  onStop("tracing", () => tracing.shutdown());
  const registry = createRegistry("supervisor");
  const nc = await connectNats(config.natsUrl, config.supervisorId);
  onStop("nats", () => nc.drain());
  const sql = connectDb(config.databaseUrl);
  onStop("database", () => sql.end({ timeout: 5 }));
  const escalator = config.escalation ? createEscalator({ ...config.escalation, logger, registry }) : undefined;
  const supervisor = createSupervisor({ config, nc, sql, logger, registry, escalator });
  onStop("supervisor", () => supervisor.stop());
  await supervisor.start();
  const metrics = await serveMetrics(registry, config.metricsPort, config.metricsHost);
  onStop("metrics", () => metrics.close());
  logger.info({ nats: redactUrl(config.natsUrl), metrics: `http://${config.metricsHost}:${metrics.port}/metrics` }, "supervisor running");
});

#!/usr/bin/env node
import { connectDb } from "@steward/platform/db";
import { connectNats } from "@steward/platform/bus";
import { createRegistry, serveMetrics } from "@steward/platform/metrics";
import { initTracing } from "@steward/platform/tracing";
import { redactUrl } from "@steward/platform/config";
import { runService } from "@steward/platform/service-main";
import { loadConfig } from "./config.js";
import { createPlanner } from "./planner.js";

runService("planner", async ({ logger, onStop }) => {
  const config = loadConfig(process.env);
  const tracing = initTracing({ component: "planner" });
  onStop("tracing", () => tracing.shutdown());
  const registry = createRegistry("planner");
  const nc = await connectNats(config.natsUrl, config.plannerId);
  onStop("nats", () => nc.drain());
  const sql = connectDb(config.databaseUrl, { max: Math.max(5, config.workers * 2 + 2) });
  onStop("database", () => sql.end({ timeout: 5 }));
  // Metrics first, on their own listener (loopback by default): the API port never serves them.
  const served = await serveMetrics(registry, config.metricsPort, config.metricsHost);
  onStop("metrics", () => served.close());
  const planner = createPlanner({ config, sql, nc, logger, registry });
  onStop("planner", () => planner.stop());
  const { port } = await planner.start();
  logger.info({ nats: redactUrl(config.natsUrl), api: `http://${config.httpHost}:${port}`, metrics: `http://${config.metricsHost}:${served.port}/metrics`, ollama: redactUrl(config.ollama.url) }, "planner running");
});

#!/usr/bin/env node
import { connectNats } from "@steward/platform/bus";
import { createRegistry, serveMetrics } from "@steward/platform/metrics";
import { initTracing } from "@steward/platform/tracing";
import { redactUrl } from "@steward/platform/config";
import { connectDb } from "@steward/platform/db";
import { runService } from "@steward/platform/service-main";
import { loadConfig } from "./config.js";
import { createObserver } from "./observer.js";

runService("observer", async ({ logger, onStop }) => {
  const config = loadConfig(process.env);
  const tracing = initTracing({ component: "observer" });
  onStop("tracing", () => tracing.shutdown());
  const registry = createRegistry("observer");
  const nc = await connectNats(config.natsUrl, `observer-${config.observerId}`);
  onStop("nats", () => nc.drain());
  logger.info({ nats: redactUrl(config.natsUrl) }, "connected to NATS");
  // A database makes this observer one of an active/standby pair (a Postgres advisory lock); without one it is always active.
  const sql = config.databaseUrl ? connectDb(config.databaseUrl, { max: 2 }) : undefined;
  if (sql) onStop("database", () => sql.end({ timeout: 5 }));
  const observer = createObserver({ config, nc, logger, registry, sql });
  // Registered before start: a signal during start-up still ends with a final snapshot and acks.
  onStop("observer", () => observer.stop());
  await observer.start();
  const served = await serveMetrics(registry, config.metricsPort, config.metricsHost);
  onStop("metrics", () => served.close());
  logger.info({ port: served.port, host: config.metricsHost, snapshot: config.snapshotPath }, "serving /metrics");
});

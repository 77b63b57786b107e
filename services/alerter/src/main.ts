#!/usr/bin/env node
import { connectDb } from "@steward/platform/db";
import { connectNats } from "@steward/platform/bus";
import { createRegistry } from "@steward/platform/metrics";
import { initTracing } from "@steward/platform/tracing";
import { redactUrl } from "@steward/platform/config";
import { runService } from "@steward/platform/service-main";
import { createAlerter } from "./alerter.js";
import { loadConfig, SERVICE_NAME } from "./config.js";

runService(SERVICE_NAME, async ({ logger, onStop }) => {
  const config = loadConfig(process.env);
  const tracing = initTracing({ component: "alerter" });
  onStop("tracing", () => tracing.shutdown());
  const registry = createRegistry(SERVICE_NAME);
  const nc = await connectNats(config.natsUrl, `steward-alerter-${config.alerterId}`);
  onStop("nats", () => nc.drain());
  const sql = connectDb(config.databaseUrl);
  onStop("database", () => sql.end({ timeout: 5 }));
  logger.info({ nats: redactUrl(config.natsUrl), database: redactUrl(config.databaseUrl), executor: redactUrl(config.executorUrl), planner: config.plannerUrl ? redactUrl(config.plannerUrl) : null }, "alerter starting");
  const alerter = createAlerter({ config, nc, sql, logger, registry });
  onStop("alerter", () => alerter.stop());
  const { url } = await alerter.start();
  console.log(`steward alerter on ${url} (metrics on ${url}/metrics)`);
});

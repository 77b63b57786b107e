#!/usr/bin/env node
import { connectNats } from "@steward/platform/bus";
import { createRegistry, serveMetrics } from "@steward/platform/metrics";
import { initTracing } from "@steward/platform/tracing";
import { redactUrl } from "@steward/platform/config";
import { runService } from "@steward/platform/service-main";
import { loadConfig } from "./config.js";
import { createObserver } from "./observer.js";

runService("observer", async ({ logger, onStop }) => {
  const config = loadConfig(process.env);
  const tracing = initTracing({ serviceName: "observer", otlpEndpoint: process.env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] || undefined });
  onStop("tracing", () => tracing.shutdown());
  const registry = createRegistry("observer");
  const nc = await connectNats(config.natsUrl, `observer-${config.observerId}`);
  onStop("nats", () => nc.drain());
  logger.info({ nats: redactUrl(config.natsUrl) }, "connected to NATS");
  const observer = createObserver({ config, nc, logger, registry });
  // Registered before start: a signal during start-up still ends with a final snapshot and acks.
  onStop("observer", () => observer.stop());
  await observer.start();
  const served = await serveMetrics(registry, config.metricsPort, config.metricsHost);
  onStop("metrics", () => served.close());
  logger.info({ port: served.port, host: config.metricsHost, snapshot: config.snapshotPath }, "serving /metrics");
});

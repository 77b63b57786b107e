#!/usr/bin/env node
import { ConfigError, connectNats, createLogger, createRegistry, initTracing, redactUrl, serveMetrics, type NatsConnection } from "@steward/shared";
import { loadConfig } from "./config.js";
import { createObserver, type Observer } from "./observer.js";

const logger = createLogger("observer");

let observer: Observer | undefined;
let nc: NatsConnection | undefined;
let metrics: { close: () => Promise<void> } | undefined;
let tracing: { shutdown: () => Promise<void> } | undefined;
let startup: Promise<void> = Promise.resolve();
let stopping = false;

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  tracing = initTracing({ serviceName: "observer", otlpEndpoint: process.env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] || undefined });
  const registry = createRegistry("observer");
  nc = await connectNats(config.natsUrl, `observer-${config.observerId}`);
  logger.info({ nats: redactUrl(config.natsUrl) }, "connected to NATS");
  observer = createObserver({ config, nc, logger, registry });
  await observer.start();
  const served = await serveMetrics(registry, config.metricsPort, config.metricsHost);
  metrics = served;
  logger.info({ port: served.port, host: config.metricsHost, snapshot: config.snapshotPath }, "serving /metrics");
}

// Installed before start-up, so a signal that arrives while starting still drains instead of killing mid-way.
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, "draining");
  await startup.catch(() => undefined);
  try {
    await observer?.stop();
    await metrics?.close();
    await nc?.drain();
    await tracing?.shutdown();
  } catch (err) {
    logger.error({ err: (err as Error).message }, "error while draining");
  }
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));

startup = main();
startup.catch((err: unknown) => {
  if (err instanceof ConfigError) logger.fatal(err.message);
  else logger.fatal({ err: (err as Error).message }, "observer failed to start");
  process.exit(1);
});

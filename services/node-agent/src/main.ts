#!/usr/bin/env node
import { ConfigError, createLogger, createRegistry, initTracing, serveMetrics } from "@steward/shared";
import { createNodeAgent } from "./agent.js";
import { loadConfig } from "./config.js";

const logger = createLogger("node-agent");

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const tracing = initTracing({ serviceName: "node-agent", otlpEndpoint: process.env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] || undefined });
  const registry = createRegistry("node-agent");
  const agent = createNodeAgent({ config, logger: logger.child({ node: config.nodeName }), registry });
  // If the agent dies without a clean stop, take its children with it (kill -9 of the agent cannot be caught: they stay).
  process.on("exit", () => agent.killChildrenNow());
  await agent.start();
  const metrics = await serveMetrics(registry, config.metricsPort, config.metricsHost);
  logger.info({ url: `http://${config.metricsHost}:${metrics.port}/metrics` }, "serving metrics");

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "stopping: stopping supervised processes and flushing events");
    void (async () => {
      try {
        await agent.stop();
        await metrics.close();
        await tracing.shutdown();
      } catch (err) {
        logger.error({ err }, "error while stopping");
      }
      process.exit(0);
    })();
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  logger.fatal({ err }, "node-agent failed to start");
  process.exit(1);
});

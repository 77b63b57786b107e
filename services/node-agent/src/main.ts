#!/usr/bin/env node
import { createRegistry, serveMetrics } from "@steward/platform/metrics";
import { initTracing } from "@steward/platform/tracing";
import { runService } from "@steward/platform/service-main";
import { createNodeAgent } from "./agent.js";
import { loadConfig } from "./config.js";

runService("node-agent", async ({ logger, onStop }) => {
  const config = loadConfig(process.env);
  const tracing = initTracing({ component: "node-agent" });
  onStop("tracing", () => tracing.shutdown());
  const registry = createRegistry("node-agent");
  const agent = createNodeAgent({ config, logger: logger.child({ node: config.nodeName }), registry });
  // If the agent dies without a clean stop, take its children with it (kill -9 of the agent cannot be caught: they stay).
  process.on("exit", () => agent.killChildrenNow());
  // Stops supervised processes and flushes what it can.
  onStop("agent", () => agent.stop());
  await agent.start();
  const metrics = await serveMetrics(registry, config.metricsPort, config.metricsHost);
  onStop("metrics", () => metrics.close());
  logger.info({ url: `http://${config.metricsHost}:${metrics.port}/metrics` }, "serving metrics");
});

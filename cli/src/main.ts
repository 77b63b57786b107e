#!/usr/bin/env node
import { initTracing } from "@steward/platform/tracing";
import { runCli } from "./cli.js";

// The CLI is where a task's trace starts (`steward task add`, `steward chat`); spans go to OTLP when configured.
const tracing = initTracing({ serviceName: "steward-cli", otlpEndpoint: process.env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] || undefined });
const code = await runCli(process.argv.slice(2), { out: (s) => process.stdout.write(s + "\n"), err: (s) => process.stderr.write(s + "\n"), env: process.env });
// `up` keeps running until a signal; every other command ends here.
if (code !== null) {
  await tracing.shutdown().catch(() => undefined);
  process.exitCode = code;
}

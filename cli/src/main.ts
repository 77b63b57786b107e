#!/usr/bin/env node
import { needsTracing, runCli } from "./cli.js";

const argv = process.argv.slice(2);
// The CLI is where a task's trace starts (`steward task add`, `steward chat`); spans go to OTLP when configured.
// OpenTelemetry is loaded only for those commands: it costs more than everything `steward status` needs.
const tracing = needsTracing(argv)
  ? (await import("@steward/platform/tracing")).initTracing({ serviceName: "steward-cli", otlpEndpoint: process.env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] || undefined })
  : undefined;
const code = await runCli(argv, { out: (s) => process.stdout.write(s + "\n"), err: (s) => process.stderr.write(s + "\n"), env: process.env });
// `up` keeps running until a signal; every other command ends here.
if (code !== null) {
  await tracing?.shutdown().catch(() => undefined);
  process.exitCode = code;
}

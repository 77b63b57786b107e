#!/usr/bin/env node
import * as nodeModule from "node:module";
import { needsTracing, runCli } from "./cli.js";

// Node 22.1 and later keep V8's compiled code of the chunks a command loads between runs (in the OS temp dir, as tsc
// does); NODE_DISABLE_COMPILE_CACHE turns it off. Node 20 has no such cache: nothing happens there.
(nodeModule as { enableCompileCache?: () => unknown }).enableCompileCache?.();

// No top-level await: the bundler merges the chunks every command shares into this file only without it.
async function main(argv: string[]): Promise<void> {
  // The CLI is where a task's trace starts (`steward task add`, `steward chat`); spans go to OTLP when configured.
  // OpenTelemetry is loaded only for those commands: it costs more than everything `steward status` needs.
  let tracing: { shutdown(): Promise<void> } | undefined;
  try {
    tracing = needsTracing(argv) ? (await import("@steward/platform/tracing")).initTracing({ component: "cli" }) : undefined;
  } catch (err) {
    // A malformed OTEL_* variable: say which, as a service would (exit 2), rather than run untraced or crash.
    process.stderr.write(`${(err as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  const code = await runCli(argv, { out: (s) => process.stdout.write(s + "\n"), err: (s) => process.stderr.write(s + "\n"), env: process.env, isTTY: process.stdout.isTTY === true });
  // `up` keeps running until a signal; every other command ends here.
  if (code !== null) {
    await tracing?.shutdown().catch(() => undefined);
    process.exitCode = code;
  }
}

void main(process.argv.slice(2));

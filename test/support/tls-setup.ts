/**
 * Vitest global setup: one CA and server certificate for the whole run, made before the test files' forks start
 * and removed after the last one ends. A fork's own `exit` handler never ran (vitest ends its workers without it),
 * so a per-process CA left a directory in the temp dir for every test file.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeLocalTls } from "@steward/cli";
import { TEST_TLS_ENV } from "./secure-nats.js";

export default async function setup(): Promise<() => Promise<void>> {
  const dir = await mkdtemp(join(tmpdir(), "steward-test-tls-"));
  const made = makeLocalTls(dir);
  // Without openssl the tests that need TLS fail with testTls()'s own message when they ask for it.
  if ("tls" in made) process.env[TEST_TLS_ENV] = JSON.stringify(made.tls);
  return async () => {
    delete process.env[TEST_TLS_ENV];
    await rm(dir, { recursive: true, force: true });
  };
}

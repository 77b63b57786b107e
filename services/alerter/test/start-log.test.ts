import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNats, waitFor, type NatsServerHandle } from "@steward/testkit";

// Credentials in a URL setting (a proxy's user:password in front of the executor or the planner) must not reach the
// logs: the start-up line names every URL the alerter talks to, each redacted.
let nats: NatsServerHandle;
beforeAll(async () => {
  nats = await startNats();
});
afterAll(async () => {
  await nats?.stop();
});

describe("the alerter's start-up line", () => {
  it("names the executor and planner URLs without their credentials", async () => {
    const main = fileURLToPath(new URL("../dist/main.js", import.meta.url));
    const env = {
      PATH: process.env["PATH"] ?? "",
      NATS_URL: nats.url,
      DATABASE_URL: "postgres://steward:db-s3cret@127.0.0.1:1/steward",
      API_TOKEN: "a-real-api-token-0123456789",
      ALERT_CONSOLE: "true",
      EXECUTOR_URL: "http://ops:exec-s3cret@127.0.0.1:1",
      PLANNER_URL: "http://ops:plan-s3cret@127.0.0.1:2",
      PLANNER_TOKEN: "a-planner-token-0123456789",
    };
    const child = spawn(process.execPath, [main], { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    try {
      const line = await waitFor("the start-up line", () => out.split("\n").find((l) => l.includes("alerter starting")), 30_000, 50);
      expect(line).toMatch(/127\.0\.0\.1:1/);
      expect(line).toMatch(/127\.0\.0\.1:2/);
      expect(out).not.toMatch(/s3cret/);
    } finally {
      child.kill("SIGKILL");
    }
  });
});

/**
 * When the executor is down the read commands still answer: `steward status` and `steward drift` read the world
 * store straight from NATS and say that actions cannot be changed right now; write commands still fail clearly.
 * Real observer, supervisor, node-agent and NATS in this process; the executor is stopped (its port then refuses).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "@steward/cli";
import { waitFor } from "@steward/testkit";
import { startStack, type Stack } from "./support/stack.js";

let stack: Stack;

beforeAll(async () => {
  const node = JSON.stringify(process.execPath);
  stack = await startStack({
    fleet: ["version: 1", "nodes:", "  f1:", "    services:", "      app:", "        kind: process", `        command: [${node}, "-e", "setInterval(() => {}, 1000)"]`, "      gone:", "        kind: process", `        command: [${node}, "-e", "process.exit(2)"]`, ""].join("\n"),
    observer: true,
    supervisor: { RECHECK_MS: "500" },
    executor: true,
    agents: { f1: { HEARTBEAT_MS: "500" } },
  });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

async function cli(env: Record<string, string>, ...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(args, { out: (s) => out.push(s), err: (s) => err.push(s), env: { STEWARD_API_URL: stack.executorUrl, STEWARD_TOKEN: stack.token, ...env } });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

describe("steward status and drift with the executor down", () => {
  it("answer from the world store with a note that actions cannot be changed; approve fails clearly", async () => {
    const env = { STEWARD_NATS_URL: stack.nats.url, ...stack.natsEnv("cli") };
    await waitFor("the world to show app running and gone exited", async () => {
      const r = await cli(env, "status", "--json");
      const svcs = r.code === 0 ? (JSON.parse(r.out) as { world: { nodes: Record<string, { services: Record<string, { state: string }> }> } }).world.nodes["f1"]?.services : undefined;
      return svcs?.["app"]?.state === "running" && svcs["gone"]?.state === "exited";
    }, 30_000, 200);
    await waitFor("the drift report to name gone", async () => (await cli(env, "drift", "--json")).out.includes("down:f1/gone"), 30_000, 200);
    const viaApi = await cli(env, "status");
    expect(viaApi.err).toBe("");

    await stack.executor!.stop();

    const status = await cli(env, "status");
    expect(status.code, status.err).toBe(0);
    expect(status.out).toMatch(/f1\s+app\s+running/);
    expect(status.err).toMatch(/note: the Steward API \(executor\) at .* is not answering .*read from the world store directly \(nats:\/\/.*\)\. Actions cannot be approved, rejected or listed right now\./);
    const json = await cli(env, "status", "--json");
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out).world.nodes.f1.services.app.state).toBe("running");
    const drift = await cli(env, "drift", "--json");
    expect(drift.code).toBe(0);
    expect(JSON.parse(drift.out).drifts.map((d: { key: string }) => d.key)).toContain("down:f1/gone");
    expect(drift.err).toMatch(/Actions cannot be approved, rejected or listed right now/);
    const exitCode = await cli(env, "drift", "--exit-code");
    expect(exitCode.code).toBe(1);

    const approve = await cli(env, "approve", "abcd1234");
    expect(approve.code).toBe(1);
    expect(approve.err).toMatch(/cannot reach the Steward API/);

    // Without a way to the world store either, the error says both.
    const none = await cli({ STEWARD_NATS_URL: "nats://127.0.0.1:1" }, "status");
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/and the world store at nats:\/\/127\.0\.0\.1:1 cannot be reached either/);
  }, 120_000);
});

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Action } from "@steward/contracts/action";
import { planRollout } from "../src/rollout.js";

let dir: string;
let fleet: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "steward-rollout-plan-"));
  fleet = join(dir, "fleet.yaml");
  const stack = (deploy?: string) => `      shop:\n        kind: compose\n        files: [compose.yaml]\n${deploy ? `        deploy: ${deploy}\n` : ""}`;
  await writeFile(
    fleet,
    `version: 1\ndeploy: { max_parallel: 2, health_timeout: 30s }\nnodes:\n  a:\n    services:\n${stack("{ max_parallel: 3, health_timeout: 10s }")}  b:\n    services:\n${stack()}  c:\n    services:\n      api:\n        kind: process\n        command: [api]\n`,
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function action(params: Record<string, unknown>, node = "a"): Action {
  const now = new Date().toISOString();
  return { id: "00000000-0000-0000-0000-000000000001", node, service: "shop", kind: "deploy", state: "running", reason: "r", drift_key: null, proposed_by: "t", diagnosis: null, created_at: now, updated_at: now, expires_at: now, result: null, traceparent: null, params };
}

describe("planRollout", () => {
  it.each([
    ["no params, no spec: the action's node with defaults", {}, undefined, { nodes: ["a"], maxParallel: 1, healthTimeoutMs: 120_000 }],
    ["params win", { nodes: ["b", "a"], max_parallel: 2, health_timeout_ms: 500 }, "spec", { nodes: ["b", "a"], maxParallel: 2, healthTimeoutMs: 500 }],
    ["the first node's service deploy settings", { nodes: ["a", "b"] }, "spec", { nodes: ["a", "b"], maxParallel: 3, healthTimeoutMs: 10_000 }],
    ["fleet deploy settings when the service has none", { nodes: ["b"] }, "spec", { nodes: ["b"], maxParallel: 2, healthTimeoutMs: 30_000 }],
  ])("%s", async (_what, params, useSpec, want) => {
    const r = await planRollout(action(params), { fleetSpecPath: useSpec ? fleet : undefined });
    expect(r).toMatchObject({ ok: true, plan: { service: "shop", ...want } });
  });

  it.each([
    ["a node listed twice", { nodes: ["a", "a"] }, /invalid deploy params: nodes: a node is listed twice/],
    ["max_parallel 0", { max_parallel: 0 }, /invalid deploy params: max_parallel/],
    ["an unknown key", { nodez: ["a"] }, /invalid deploy params/],
    ["a node that does not declare the stack", { nodes: ["a", "z"] }, /'shop' is not declared on node 'z'.*nothing was sent/],
  ])("refuses %s before touching anything", async (_what, params, msg) => {
    const r = await planRollout(action(params), { fleetSpecPath: fleet });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toMatch(msg);
  });

  it("an unreadable spec falls back to defaults and says so", async () => {
    const r = await planRollout(action({}), { fleetSpecPath: join(dir, "nope.yaml"), defaultHealthTimeoutMs: 7000 });
    expect(r).toMatchObject({ ok: true, plan: { healthTimeoutMs: 7000, maxParallel: 1 }, note: expect.stringMatching(/fleet spec unreadable/) });
  });
});

/**
 * The settle window: a restarted service without health checks that exits right after it reached `running` is
 * failed (naming the exit), not verified succeeded; one that stays up is verified once the window is over.
 * Real node-agent with real child processes, observer, supervisor and executor in this process.
 */
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NodeAgent } from "@steward/node-agent";
import { waitFor } from "@steward/testkit";
import { startStack, type Stack } from "./support/stack.js";

let stack: Stack;
let agent: NodeAgent;
const SETTLE_MS = 4000;

beforeAll(async () => {
  const node = JSON.stringify(process.execPath);
  stack = await startStack({
    fleet: (dir) => {
      // Runs until its marker exists; from then on it exits 1.5 s after it starts: running first, then gone.
      const blip = `if (require('fs').existsSync(${JSON.stringify(join(dir, "blip.broken"))})) setTimeout(() => process.exit(4), 1500); setInterval(() => {}, 1000)`;
      return ["version: 1", "nodes:", "  s1:", "    services:", "      blip:", "        kind: process", `        command: [${node}, "-e", ${JSON.stringify(blip)}]`, ""].join("\n");
    },
    observer: true,
    supervisor: { RECHECK_MS: "500" },
    executor: { VERIFY_SETTLE_MS: String(SETTLE_MS) },
    agents: { s1: { HEARTBEAT_MS: "500" } },
  });
  agent = stack.agents["s1"]!;
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

const api = async (path: string, init: RequestInit = {}) => {
  const r = await fetch(stack.executorUrl + path, { ...init, headers: { authorization: `Bearer ${stack.token}`, "content-type": "application/json" }, signal: AbortSignal.timeout(20_000) });
  return (await r.json()) as Record<string, unknown>;
};

type Action = { id: string; kind: string; service: string; state: string; result: string | null };

async function killAndRestart(): Promise<{ action: Action; ms: number }> {
  const pid = await waitFor("blip running", () => {
    const s = agent.status().find((x) => x.service === "blip");
    return s?.state === "running" ? s.pid : undefined;
  }, 30_000);
  process.kill(pid!, "SIGKILL");
  const pending = await waitFor("a pending restart of blip", async () => ((await api("/api/actions?state=pending"))["actions"] as Action[]).find((a) => a.service === "blip" && a.kind === "restart"), 30_000, 100);
  const approvedAt = Date.now();
  await api(`/api/actions/${pending.id}/approve`, { method: "POST", body: JSON.stringify({ actor: "tester", channel: "api" }) });
  const action = await waitFor("the restart to end", async () => {
    const a = (await api(`/api/actions/${pending.id}`))["action"] as Action;
    return ["succeeded", "failed", "failed_unknown"].includes(a.state) && a;
  }, 60_000, 100);
  return { action, ms: Date.now() - approvedAt };
}

describe("verification waits out a settle window", () => {
  it("a service without checks that exits right after it came up is failed, naming the exit", async () => {
    await writeFile(join(stack.dir, "blip.broken"), "");
    const { action } = await killAndRestart();
    expect(action.state, JSON.stringify(action)).toBe("failed");
    expect(action.result).toMatch(/s1\/blip is exited/);
    expect(action.result).toMatch(/code 4/);
  }, 120_000);

  it("one that stays up is verified after the window, saying so", async () => {
    await rm(join(stack.dir, "blip.broken"), { force: true });
    // The failed restart left blip exited; the supervisor proposes another restart for it.
    const pending = await waitFor("a pending restart of blip", async () => ((await api("/api/actions?state=pending"))["actions"] as Action[]).find((a) => a.service === "blip" && a.kind === "restart"), 30_000, 100);
    const approvedAt = Date.now();
    await api(`/api/actions/${pending.id}/approve`, { method: "POST", body: JSON.stringify({ actor: "tester", channel: "api" }) });
    const action = await waitFor("the restart to end", async () => {
      const a = (await api(`/api/actions/${pending.id}`))["action"] as Action;
      return ["succeeded", "failed", "failed_unknown"].includes(a.state) && a;
    }, 60_000, 100);
    expect(action.state, JSON.stringify(action)).toBe("succeeded");
    expect(action.result).toMatch(/stayed running through the settle window/);
    expect(Date.now() - approvedAt).toBeGreaterThanOrEqual(SETTLE_MS);
  }, 120_000);
});

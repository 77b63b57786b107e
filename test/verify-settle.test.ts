/**
 * The settle window: a restarted service without health checks that exits right after it reached `running` is
 * failed (naming the exit), not verified succeeded; one that stays up is verified once the window is over.
 * Real node-agent with real child processes, observer, supervisor and executor in this process.
 */
import { rm, writeFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { waitFor } from "@steward/testkit";
import { approveAndWait, pendingRestart, useProcessNode, type ActionView } from "./support/process-node.js";

const SETTLE_MS = 4000;
const n = useProcessNode({
  node: "s1",
  services: {
    // Runs until its marker exists; from then on it exits 1.5 s after it starts: running first, then gone.
    blip: { script: (marker) => `if (require('fs').existsSync(${marker})) setTimeout(() => process.exit(4), 1500); setInterval(() => {}, 1000)` },
  },
  supervisor: { RECHECK_MS: "500" },
  executor: { VERIFY_SETTLE_MS: String(SETTLE_MS) },
});

async function killAndRestart(): Promise<{ action: ActionView; ms: number }> {
  const pid = await waitFor("blip running", () => {
    const s = n.agent.status().find((x) => x.service === "blip");
    return s?.state === "running" ? s.pid : undefined;
  }, 30_000);
  process.kill(pid!, "SIGKILL");
  const pending = await pendingRestart(n.stack, "blip");
  return approveAndWait(n.stack, pending.id, 60_000);
}

describe("verification waits out a settle window", () => {
  it("a service without checks that exits right after it came up is failed, naming the exit", async () => {
    await writeFile(n.marker("blip"), "");
    const { action } = await killAndRestart();
    expect(action.state, JSON.stringify(action)).toBe("failed");
    expect(action.result).toMatch(/s1\/blip is exited/);
    expect(action.result).toMatch(/code 4/);
  }, 120_000);

  it("one that stays up is verified after the window, saying so", async () => {
    await rm(n.marker("blip"), { force: true });
    // The failed restart left blip exited; the supervisor proposes another restart for it.
    const pending = await pendingRestart(n.stack, "blip");
    const { action, ms } = await approveAndWait(n.stack, pending.id, 60_000);
    expect(action.state, JSON.stringify(action)).toBe("succeeded");
    expect(action.result).toMatch(/stayed running through the settle window/);
    expect(ms).toBeGreaterThanOrEqual(SETTLE_MS);
  }, 120_000);
});

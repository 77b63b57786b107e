/**
 * End to end, the way an operator drives Steward: `steward up` with the demo fleet (real nats-server,
 * a throwaway PostgreSQL cluster, every service as its own process), then the CLI in another "terminal".
 */
import { appendFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Action, AuditEntry } from "@steward/contracts/action";
import type { DriftReport } from "@steward/contracts/drift";
import type { Snapshot } from "@steward/contracts/world-state";
import { metricValue, waitFor, waitForTicks } from "@steward/testkit";
import { runSteward, startUp, type RunningUp } from "./steward-process.js";

let home = "";
let dir = "";
let up: RunningUp | undefined;
/** Demo services of a hung agent are ours to clean up, should it not stop them. */
const servicePids = new Set<number>();
/** The node-agent the test stopped (SIGSTOP): continued before the stack stops. */
let stoppedAgent: number | undefined;

const steward = <T = unknown>(...args: string[]) => runSteward<T>(home, args);

const world = () => steward<Snapshot>("status", "--json").json;
const drifts = () => steward<DriftReport>("drift", "--json").json?.drifts ?? [];
const actions = () => steward<{ actions: Action[] }>("actions", "--json").json?.actions ?? [];
const svc = (node: string, name: string) => world()?.world.nodes[node]?.services[name];
/** Two more supervisor cycles (its metric, read from the URL `steward up` recorded in stack.json): one ran whole after this call. */
const supervisorCycles = async () => {
  const stack = JSON.parse(await readFile(join(home, "stack.json"), "utf8")) as { metrics: Record<string, string> };
  await waitForTicks("supervisor cycles", () => metricValue(stack.metrics["supervisor"]!, "steward_supervisor_cycles_total"), 2, 30_000);
};

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), "steward-e2e-home-"));
  dir = join(home, "stack");
  up = await startUp(home, ["--dir", dir, "--keep", "--heartbeat-ms", "500", "--api-port", "0"]);
}, 120_000);

afterAll(async () => {
  if (stoppedAgent) process.kill(stoppedAgent, "SIGCONT");
  for (const pid of servicePids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  await up?.stop();
  await rm(home, { recursive: true, force: true });
}, 60_000);

describe("steward up: the demo fleet, driven through the CLI", () => {
  it("reports both nodes and their services healthy", async () => {
    await waitFor("demo services healthy", () => {
      const w = world();
      const web = w?.world.nodes["demo-a"]?.services["web"];
      const worker = w?.world.nodes["demo-b"]?.services["worker"];
      return web?.health === "healthy" && worker?.health === "healthy" ? w : undefined;
    }, 30_000, 300);
    const table = steward("status");
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/demo-a\s+up/);
    expect(table.stdout).toMatch(/demo-a\s+web\s+running\s+healthy/);
  });

  it("a declared service that was never started is `missing` and gets exactly one proposed start", async () => {
    await waitFor("missing drift for demo-b/reports", () => drifts().find((d) => d.kind === "missing" && d.node === "demo-b" && d.service === "reports"), 20_000, 300);
    const start = await waitFor("pending start", () => actions().find((a) => a.node === "demo-b" && a.service === "reports" && a.kind === "start" && a.state === "pending"), 20_000, 300);
    await supervisorCycles(); // more supervisor cycles: still one
    expect(actions().filter((a) => a.node === "demo-b" && a.service === "reports" && a.kind === "start")).toHaveLength(1);
    expect(steward("approve", start.id.slice(0, 8)).code).toBe(0);
    await waitFor("reports running and healthy", () => svc("demo-b", "reports")?.health === "healthy", 30_000, 300);
  });

  it("kill -9 → down → pending restart → approve → running and healthy again → drift clears, audit holds each step", async () => {
    const before = await waitFor("web pid", () => svc("demo-a", "web")?.pid, 10_000, 200);
    process.kill(before, "SIGKILL");

    const down = await waitFor("down drift", () => drifts().find((d) => d.kind === "down" && d.node === "demo-a" && d.service === "web"), 10_000, 200);
    expect(down.severity).toBe("action");
    const pending = await waitFor("pending restart", () => actions().find((a) => a.node === "demo-a" && a.service === "web" && a.kind === "restart" && a.state === "pending"), 10_000, 200);
    expect(steward("drift").stdout).toMatch(/down\s+demo-a\s+web/);

    const approved = steward("approve", pending.id);
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stdout).toMatch(/approved/);

    const done = await waitFor("action succeeded", () => {
      const a = steward<{ action: Action; audit: AuditEntry[] }>("actions", "show", pending.id, "--json").json;
      if (a?.action.state === "failed" || a?.action.state === "failed_unknown") throw new Error(`action ${a.action.state}: ${a.action.result}`);
      return a?.action.state === "succeeded" ? a : undefined;
    }, 45_000, 300);
    const after = svc("demo-a", "web");
    expect(after?.state).toBe("running");
    expect(after?.health).toBe("healthy");
    expect(after?.pid).not.toBe(before);
    await waitFor("drift cleared", () => !drifts().some((d) => d.node === "demo-a" && d.service === "web"), 15_000, 300);

    expect(done.audit.map((e) => e.to_state)).toEqual(["pending", "approved", "running", "succeeded"]);
    const approval = done.audit.find((e) => e.to_state === "approved");
    // The stack file's token is the bootstrap admin credential: its name, not $STEWARD_USER, is the actor.
    expect(approval?.actor).toBe("admin");
    expect(approval?.channel).toBe("cli");
    expect(steward("actions", "show", pending.id).stdout).toMatch(/succeeded/);
    // Deciding it again is refused and changes nothing.
    const again = steward("approve", pending.id);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/409/);
  });

  it("a service added to the spec while everything runs is proposed, without restarting anything", async () => {
    const w0 = world()!;
    const agentStarted = w0.world.nodes["demo-a"]?.agent_started_at;
    const webPid = w0.world.nodes["demo-a"]?.services["web"]?.pid;
    const fleet = join(dir, "fleet.yaml");
    const text = await readFile(fleet, "utf8");
    const port = 20000 + Math.floor(Math.random() * 20000);
    // demo-a's `api` block is the template; append a new service under demo-a.
    const added = text.replace("  demo-b:\n", `      extra:\n        kind: process\n        command: [${JSON.stringify(process.execPath)}, "-e", "require('http').createServer((q,s)=>s.end('ok')).listen(${port})"]\n        autostart: false\n  demo-b:\n`);
    expect(added).not.toBe(text);
    await appendFile(fleet, ""); // keep the inode; rewrite below
    const { writeFile } = await import("node:fs/promises");
    await writeFile(fleet, added);
    expect(steward("validate", fleet).code).toBe(0);
    await waitFor("pending start for the new service", () => actions().find((a) => a.node === "demo-a" && a.service === "extra" && a.kind === "start" && a.state === "pending"), 20_000, 300);
    const w1 = world()!;
    expect(w1.world.nodes["demo-a"]?.agent_started_at).toBe(agentStarted);
    expect(w1.world.nodes["demo-a"]?.services["web"]?.pid).toBe(webPid);
  });

  it("a hung node-agent makes its services `unknown`: an alert, never an action", async () => {
    const stack = JSON.parse(await readFile(join(home, "stack.json"), "utf8")) as { processes: Record<string, number> };
    const agent = stack.processes["node-agent-demo-b"];
    expect(agent).toBeGreaterThan(0);
    const before = actions().length;
    for (const s of Object.values(world()?.world.nodes["demo-b"]?.services ?? {})) if (s.pid) servicePids.add(s.pid);
    // Stopped, not killed: `up` restarts an agent that dies (e2e-up-heal.test.ts), a hung one only goes silent.
    process.kill(agent!, "SIGSTOP");
    stoppedAgent = agent;
    await waitFor("demo-b stale", () => world()?.world.nodes["demo-b"]?.status === "stale", 15_000, 300);
    const unknown = await waitFor("unknown drift", () => drifts().filter((d) => d.node === "demo-b" && d.kind === "unknown"), 10_000, 300);
    expect(unknown.length).toBeGreaterThan(0);
    expect(unknown.every((d) => d.severity === "alert" && d.proposes === null)).toBe(true);
    await supervisorCycles();
    expect(actions().filter((a) => a.node === "demo-b" && a.state === "pending")).toHaveLength(0);
    expect(actions().length).toBe(before);
    expect(steward("status").stdout).toMatch(/demo-b\s+STALE/);
  });

  it("ran every step above as NATS identities with their own permissions: the server logged no violation", async () => {
    const log = await readFile(join(dir, "logs", "nats-server.log"), "utf8");
    expect(log).toMatch(/TLS required for client connections/);
    expect(log.split("\n").filter((l) => /Violation/.test(l))).toEqual([]);
  });
});

/**
 * `steward up` heals its own stack, driven as an operator would: kill -9 the observer, the terminal says it is
 * restarted (with how it died and the delay), the stack file names the new process, and the loop still works (a fleet
 * service killed → down → pending restart → approve → healthy). A service that keeps dying is given up on, loudly.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Action } from "@steward/contracts/action";
import type { DriftReport } from "@steward/contracts/drift";
import type { Snapshot } from "@steward/contracts/world-state";
import { metricValue, waitFor } from "@steward/testkit";
import { runSteward, startUp, type RunningUp } from "./steward-process.js";

let home = "";
let up: RunningUp | undefined;

const steward = <T = unknown>(...args: string[]) => runSteward<T>(home, args);
const world = () => steward<Snapshot>("status", "--json").json;
const drifts = () => steward<DriftReport>("drift", "--json").json?.drifts ?? [];
const actions = () => steward<{ actions: Action[] }>("actions", "--json").json?.actions ?? [];
const svc = (node: string, name: string) => world()?.world.nodes[node]?.services[name];
const stackFile = async () => JSON.parse(await readFile(join(home, "stack.json"), "utf8")) as { processes: Record<string, number>; metrics: Record<string, string> };
// A killed process whose parent died too is reparented to PID 1, which here (a sandbox's process manager, not an init)
// may never reap it: a zombie answers kill(pid, 0) but runs nothing, so it counts as gone.
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
};

/**
 * Live processes of this stack's demo service `name`, from /proc: argv runs http-service.mjs with `--port` the port the
 * demo fleet (in this stack's dir) gives it; other stacks on the machine run the same demo with other ports.
 */
async function demoProcesses(name: string): Promise<number[]> {
  const fleet = await readFile(join(home, "stack", "fleet.yaml"), "utf8");
  const port = new RegExp(`--port, "(\\d+)", --name, ${name}\\]`).exec(fleet)?.[1];
  expect(port, `${name}'s port in the demo fleet`).toBeDefined();
  const out: number[] = [];
  for (const pid of (await readdir("/proc")).filter((p) => /^\d+$/.test(p))) {
    const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0");
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    if (argv.some((a) => a.endsWith("http-service.mjs")) && argv[argv.indexOf("--port") + 1] === port && !/\) Z /.test(stat)) out.push(Number(pid));
  }
  return out;
}

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), "steward-e2e-heal-"));
  // Two restarts within 10 minutes: the third death of the same service is given up on.
  up = await startUp(home, ["--dir", join(home, "stack"), "--heartbeat-ms", "500", "--restart-attempts", "2", "--restart-window", "600"]);
}, 120_000);

afterAll(async () => {
  await up?.stop();
  await rm(home, { recursive: true, force: true });
}, 60_000);

/** kill -9 of the observer `steward up` runs; resolves with the new pid once the terminal says it was restarted. */
async function killObserver(n: number): Promise<number> {
  const old = (await stackFile()).processes["observer"]!;
  expect(old).toBeGreaterThan(0);
  const t0 = Date.now();
  process.kill(old, "SIGKILL");
  await waitFor(`restart ${n} announced`, () => up!.output().match(new RegExp(`warning: observer killed by SIGKILL; restarting it in [0-9.]+ s \\(restart ${n} of 2 within 600 s\\)`)), 15_000, 100);
  await waitFor(`observer restarted (${n})`, () => up!.output().match(/observer restarted \(pid (\d+)\)/g)?.length === n, 60_000, 200);
  console.log(`kill -9 observer → "observer restarted" on up's terminal (restart ${n}): ${Date.now() - t0} ms`);
  const pid = await waitFor("the stack file names the new observer", async () => {
    const p = (await stackFile()).processes["observer"];
    return p !== old ? p : undefined;
  }, 10_000, 100);
  expect(up!.output()).toContain(`observer restarted (pid ${pid})`);
  expect(alive(pid)).toBe(true);
  return pid;
}

describe("steward up restarts a service of its own that dies", () => {
  it("kill -9 the observer → restarted on the same metrics port, and the loop still works", async () => {
    await waitFor("demo services healthy", () => svc("demo-a", "web")?.health === "healthy" && svc("demo-b", "worker")?.health === "healthy", 30_000, 300);
    const metricsUrl = (await stackFile()).metrics["observer"]!;
    await killObserver(1);
    // Same port: the metrics URL `up` printed and recorded still answers, now from the new observer (active, folding).
    await waitFor("the new observer folds events", async () => ((await metricValue(metricsUrl, "steward_observer_events_folded_total").catch(() => 0)) > 0 ? true : undefined), 30_000, 300);
    expect(await metricValue(metricsUrl, "steward_observer_active")).toBe(1);

    // The loop, through the restarted observer: kill a fleet service → down → pending restart → approve → healthy.
    const before = await waitFor("web pid", () => svc("demo-a", "web")?.pid, 10_000, 200);
    process.kill(before, "SIGKILL");
    await waitFor("down drift", () => drifts().find((d) => d.kind === "down" && d.node === "demo-a" && d.service === "web"), 15_000, 200);
    const pending = await waitFor("pending restart", () => actions().find((a) => a.node === "demo-a" && a.service === "web" && a.kind === "restart" && a.state === "pending"), 15_000, 200);
    const approved = steward("approve", pending.id);
    expect(approved.code, approved.stderr).toBe(0);
    await waitFor("action succeeded", () => {
      const a = steward<{ action: Action }>("actions", "show", pending.id, "--json").json?.action;
      if (a?.state === "failed" || a?.state === "failed_unknown") throw new Error(`action ${a.state}: ${a.result}`);
      return a?.state === "succeeded" ? a : undefined;
    }, 45_000, 300);
    const after = svc("demo-a", "web");
    expect(after?.health).toBe("healthy");
    expect(after?.pid).not.toBe(before);
  });

  it("kill -9 a node-agent → restarted; its services run exactly once (fresh), healthy in the world", async () => {
    const demoA = world()!.world.nodes["demo-a"]!;
    const before = { web: demoA.services["web"]!.pid!, api: demoA.services["api"]!.pid! };
    const agent = (await stackFile()).processes["node-agent-demo-a"]!;
    const t0 = Date.now();
    process.kill(agent, "SIGKILL");
    await waitFor("agent restart announced", () => up!.output().match(/warning: node-agent-demo-a killed by SIGKILL; restarting it in/), 15_000, 100);
    await waitFor("node-agent-demo-a restarted", () => up!.output().match(/node-agent-demo-a restarted \(pid \d+\)/), 60_000, 200);
    const after = await waitFor("demo-a's services healthy under the new agent, fresh", () => {
      const n = world()?.world.nodes["demo-a"];
      const ok = n && n.agent_started_at !== demoA.agent_started_at && (["web", "api"] as const).every((s) => n.services[s]?.health === "healthy" && n.services[s]?.pid && n.services[s]?.pid !== before[s]);
      return ok ? n : undefined;
    }, 60_000, 300);
    console.log(`kill -9 node-agent-demo-a → its services fresh and healthy in the world: ${Date.now() - t0} ms`);
    // Exactly one process per service: the demo service's argv names it (`--name web`), counted in /proc.
    for (const name of ["web", "api"] as const) expect(await demoProcesses(name), name).toEqual([after.services[name]!.pid]);
    expect(alive(before.web) || alive(before.api)).toBe(false);
  });

  it("a service that keeps dying is given up on after --restart-attempts, loudly, and stays down", async () => {
    await killObserver(2);
    const last = (await stackFile()).processes["observer"]!;
    process.kill(last, "SIGKILL");
    await waitFor("given up", () => up!.output().match(/error: observer killed by SIGKILL: it died 3 times within 600 s; giving up on it after 2 restarts/), 15_000, 100);
    // The rest of the stack still runs and answers: `status` reads through the executor.
    expect(steward("status").code).toBe(0);
    expect(up!.output().match(/observer restarted/g)).toHaveLength(2);
    expect(up!.proc.exitCode).toBeNull();
  });
});

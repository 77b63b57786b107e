/**
 * `steward up` heals its own stack, driven as an operator would: kill -9 the observer, the terminal says it is
 * restarted (with how it died and the delay), the stack file names the new process, and the loop still works (a fleet
 * service killed → down → pending restart → approve → healthy). A service that keeps dying is given up on, loudly.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
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
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

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
  process.kill(old, "SIGKILL");
  await waitFor(`restart ${n} announced`, () => up!.output().match(new RegExp(`warning: observer killed by SIGKILL; restarting it in [0-9.]+ s \\(restart ${n} of 2 within 600 s\\)`)), 15_000, 100);
  await waitFor(`observer restarted (${n})`, () => up!.output().match(/observer restarted \(pid (\d+)\)/g)?.length === n, 60_000, 200);
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

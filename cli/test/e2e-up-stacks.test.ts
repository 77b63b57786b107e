/**
 * `steward up` owns exactly what it starts. Two stacks started at the same moment (separate STEWARD_HOMEs) get their
 * own ports and each CLI reaches its own stack, proven by the stack id; a second `up` on a taken home refuses; bad
 * settings exit 2 naming the setting; Ctrl-C (SIGINT to the terminal's process group) stops services newest first and
 * the engines last, quickly, with no error logged and nothing left running; an `up` killed -9 takes its services with
 * it, and the next `up` on that home stops what is left.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "@steward/testkit";
import { CLI, runSteward } from "./steward-process.js";

interface Up {
  home: string;
  dir: string;
  proc: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

/** `steward up` in a process group of its own, as a terminal runs it: Ctrl-C is SIGINT to the whole group. */
function spawnUp(home: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Up {
  const env: NodeJS.ProcessEnv = { ...process.env, STEWARD_HOME: home, ...extraEnv };
  for (const k of ["NATS_URL", "DATABASE_URL", "STEWARD_STACK_ID"]) delete env[k];
  const dir = join(home, "stack");
  const proc = spawn(process.execPath, [CLI, "up", "--dir", dir, "--keep", "--heartbeat-ms", "500", ...args], { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  proc.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  return { home, dir, proc, out: () => out, exited };
}

const ready = (u: Up) => waitFor(`steward up in ${u.home} to be ready`, () => {
  if (u.proc.exitCode !== null) throw new Error(`steward up exited (${u.proc.exitCode}):\n${u.out()}`);
  return u.out().includes("Steward is up");
}, 150_000, 200);

interface StackFileJson {
  api_url: string;
  planner_url?: string;
  stack_id: string;
  token: string;
  processes: Record<string, number>;
  metrics: Record<string, string>;
}
const stackFile = async (home: string) => JSON.parse(await readFile(join(home, "stack.json"), "utf8")) as StackFileJson;

/** Every process that carries the stack's id in its environment: the stack's own, and what its node-agents run. */
function processesOf(stackId: string): number[] {
  return readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .filter((e) => {
      try {
        return readFileSync(`/proc/${e}/environ`, "utf8").split("\0").includes(`STEWARD_STACK_ID=${stackId}`);
      } catch {
        return false;
      }
    })
    .map(Number);
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Lines that are errors in a stack's logs: pino level >= 50 in the services', [ERR] in nats-server's, FATAL/PANIC in PostgreSQL's. */
function errorLines(dir: string): string[] {
  const logs = join(dir, "logs");
  return readdirSync(logs).flatMap((f) =>
    readFileSync(join(logs, f), "utf8")
      .split("\n")
      .filter((l) => {
        if (f === "nats-server.log") return /\[(ERR|FTL)\]/.test(l);
        if (f === "postgres.log") return /\b(FATAL|PANIC):/.test(l);
        // Plain lines are a service saying where it listens, or the alerter's console sink telling the operator
        // about the demo fleet (up always runs the alerter): neither is an error of the stack.
        if (!l.startsWith("{")) return l.trim() !== "" && !/^steward \w+ (API )?on http/.test(l) && !/^steward alert: /.test(l);
        const level = (JSON.parse(l) as { level?: number }).level ?? 0;
        return level >= 50 || /error while stopping|disconnected/i.test(l);
      })
      .map((l) => `${f}: ${l}`),
  );
}

const homes: string[] = [];
let a: Up;
let b: Up;

beforeAll(async () => {
  for (let i = 0; i < 3; i++) homes.push(await mkdtemp(join(tmpdir(), `steward-e2e-stacks-${i}-`)));
  // At the same moment, as two terminals would.
  a = spawnUp(homes[0]!, []);
  b = spawnUp(homes[1]!, []);
  await Promise.all([ready(a), ready(b)]);
}, 180_000);

afterAll(async () => {
  for (const u of [a, b]) {
    if (u && u.proc.exitCode === null && u.proc.signalCode === null) {
      try {
        process.kill(-u.proc.pid!, "SIGKILL");
      } catch {
        /* gone */
      }
    }
  }
  for (const h of homes) {
    const id = await stackFile(h).then((s) => s.stack_id).catch(() => undefined);
    if (id) for (const pid of processesOf(id)) process.kill(pid, "SIGKILL");
    await rm(h, { recursive: true, force: true });
  }
}, 60_000);

describe("two stacks at once", () => {
  it("get two distinct API ports, and each CLI reaches its own stack (checked by the stack id)", async () => {
    const [sa, sb] = [await stackFile(a.home), await stackFile(b.home)];
    expect(sa.stack_id).not.toBe(sb.stack_id);
    expect(new URL(sa.api_url).port).not.toBe(new URL(sb.api_url).port);
    // The stack file names every process up started, the engines included: PostgreSQL's postmaster by its PID.
    for (const s of [sa, sb]) {
      expect(Object.keys(s.processes)).toEqual(expect.arrayContaining(["nats-server", "postgres", "observer", "planner", "executor", "supervisor"]));
      expect(readFileSync(`/proc/${s.processes["postgres"]}/cmdline`, "utf8")).toContain(`cluster_name=steward-${s.stack_id}`);
    }
    for (const [u, s] of [[a, sa], [b, sb]] as const) {
      for (const url of [s.api_url, s.planner_url!]) {
        const res = await fetch(`${url}/healthz`);
        expect(res.headers.get("x-steward-stack"), url).toBe(s.stack_id);
      }
      const status = runSteward<{ world: unknown }>(u.home, ["status", "--json"]);
      expect(status.code, status.stderr).toBe(0);
      // The executor's and the planner's metrics are on listeners of their own; their API ports serve none.
      for (const [svc, api] of [["executor", s.api_url], ["planner", s.planner_url!]] as const) {
        const metrics = s.metrics[svc]!;
        expect(new URL(metrics).port, svc).not.toBe(new URL(api).port);
        expect(await (await fetch(metrics)).text(), svc).toContain(`steward_${svc}_`);
        expect((await fetch(`${api}/metrics`)).status, svc).toBe(404);
      }
    }
  });

  it("a CLI whose stack file points at another stack's API refuses to talk to it", async () => {
    const sa = await stackFile(a.home);
    const sb = await stackFile(b.home);
    await writeFile(join(homes[2]!, "stack.json"), JSON.stringify({ ...sa, api_url: sb.api_url, planner_url: sb.planner_url }));
    const r = runSteward(homes[2]!, ["status"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/is not the stack in the stack file/);
    const t = runSteward(homes[2]!, ["task", "ls"]);
    expect(t.code).toBe(1);
    expect(t.stderr).toMatch(/is not the stack in the stack file/);
    await rm(join(homes[2]!, "stack.json"));
  });

  it("a second `steward up` on a STEWARD_HOME whose stack runs refuses clearly and starts nothing", async () => {
    const before = await readFile(join(a.home, "stack.json"), "utf8");
    const again = spawn(process.execPath, [CLI, "up"], { env: { ...process.env, STEWARD_HOME: a.home }, stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    again.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const code = await new Promise((r) => again.once("exit", r));
    expect(code).toBe(1);
    expect(err).toMatch(/already running with STEWARD_HOME=.*pid \d+.*own STEWARD_HOME/s);
    expect(await readFile(join(a.home, "stack.json"), "utf8")).toBe(before);
  });

  it("a bad setting exits 2 naming it, before anything starts", async () => {
    const bad = spawn(process.execPath, [CLI, "up"], { env: { ...process.env, STEWARD_HOME: homes[2]!, RECHECK_MS: "soon", VERIFY_TIMEOUT_MS: "-5" }, stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    bad.stderr.on("data", (d: Buffer) => (err += d.toString()));
    expect(await new Promise((r) => bad.once("exit", r))).toBe(2);
    expect(err).toMatch(/RECHECK_MS/);
    expect(err).toMatch(/VERIFY_TIMEOUT_MS/);
    expect(err).not.toContain("soon");
    expect(readdirSync(homes[2]!)).toEqual([]);
  });

  it("Ctrl-C stops the services newest first and the engines last, quickly, with no error logged and nothing left", async () => {
    const s = await stackFile(b.home);
    const members = processesOf(s.stack_id);
    expect(members.length).toBeGreaterThanOrEqual(Object.keys(s.processes).length);
    const t0 = Date.now();
    process.kill(-b.proc.pid!, "SIGINT");
    expect(await b.exited).toBe(0);
    const exitMs = Date.now() - t0;
    const stopped = [...b.out().matchAll(/^ {2}stopped (\S+) \(\d+ ms\)$/gm)].map((m) => m[1]);
    expect(stopped).toEqual(["node-agent-demo-b", "node-agent-demo-a", "alerter", "supervisor", "executor", "planner", "observer", "postgres", "nats-server"]);
    const reported = Number(/stopped in (\d+) ms\./.exec(b.out())?.[1]);
    console.log(`stack ${s.stack_id}: processes stopped in ${reported} ms; steward up exited ${exitMs} ms after Ctrl-C`);
    // The bound is 5 s; a busy 2-core machine gets a generous margin on top.
    expect(reported).toBeLessThan(10_000);
    expect(exitMs).toBeLessThan(15_000);
    expect(errorLines(b.dir)).toEqual([]);
    expect(processesOf(s.stack_id)).toEqual([]);
    expect(members.filter(alive)).toEqual([]);
    expect(readdirSync(b.home)).not.toContain("stack.json");
  });

  it("an `up` killed -9 takes its services with it; the next `up` on that home stops what is left and takes over", async () => {
    const s = await stackFile(a.home);
    process.kill(a.proc.pid!, "SIGKILL");
    await a.exited;
    // The services notice their IPC channel close and drain by themselves; only the engines stay.
    const left = await waitFor("only the engines left", () => {
      const pids = processesOf(s.stack_id);
      const services = Object.entries(s.processes).filter(([n, pid]) => n !== "nats-server" && n !== "postgres" && pids.includes(pid));
      return services.length === 0 ? pids : undefined;
    }, 30_000, 200);
    expect(left).toContain(s.processes["nats-server"]);
    // The next `up` on that home: it cleans up, then fails fast here (no nats-server binary) and exits 1.
    const next = spawn(process.execPath, [CLI, "up"], { env: { ...process.env, STEWARD_HOME: a.home, NATS_SERVER_BIN: "/nonexistent/nats-server" }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    next.stdout.on("data", (d: Buffer) => (out += d.toString()));
    next.stderr.on("data", (d: Buffer) => (out += d.toString()));
    expect(await new Promise((r) => next.once("exit", r))).toBe(1);
    expect(out).toMatch(new RegExp(`did not stop \\(stack ${s.stack_id}.*stopped its \\d+ leftover process`, "s"));
    expect(out).toMatch(/cannot start nats-server/);
    expect(processesOf(s.stack_id)).toEqual([]);
    expect(readdirSync(a.home)).not.toContain("up.lock");
  });
});

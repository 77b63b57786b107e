/** How `steward up` heals its stack: the pure restart decision, and the healer driving real processes that die. */
import { spawn, type ChildProcess } from "node:child_process";
import { describe, expect, it } from "vitest";
import { waitFor } from "@steward/testkit";
import { decideRestart, DEFAULT_RESTART_POLICY, describeExit, restartLine, type RestartPolicy } from "../src/up/restart-policy.js";
import { createStackHealer, type Healable } from "../src/up/stack-healer.js";
import { pinnedPort } from "../src/up/stack-plan.js";

const p: RestartPolicy = { attempts: 3, windowMs: 60_000, baseDelayMs: 500, maxDelayMs: 1500 };

describe("decideRestart", () => {
  it.each([
    ["first death", [1000], 1000, { restart: true, attempt: 1, delayMs: 500 }],
    ["second within the window: the delay doubles", [0, 1000], 1000, { restart: true, attempt: 2, delayMs: 1000 }],
    ["third: doubled again, capped at maxDelayMs", [0, 500, 1000], 1000, { restart: true, attempt: 3, delayMs: 1500 }],
    ["fourth within the window: given up on", [0, 500, 900, 1000], 1000, { restart: false, deaths: 4 }],
    ["deaths older than the window no longer count", [0, 500, 900, 70_000], 70_000, { restart: true, attempt: 1, delayMs: 500 }],
    ["order does not matter", [1000, 0], 1000, { restart: true, attempt: 2, delayMs: 1000 }],
  ] as const)("%s", (_, deaths, now, want) => {
    expect(decideRestart(deaths, now, p)).toEqual(want);
  });

  it("the defaults: 5 restarts within 60 s, from 0.5 s", () => {
    expect(DEFAULT_RESTART_POLICY).toMatchObject({ attempts: 5, windowMs: 60_000, baseDelayMs: 500 });
    expect(decideRestart([1, 2, 3, 4, 5], 5, DEFAULT_RESTART_POLICY)).toEqual({ restart: true, attempt: 5, delayMs: 8000 });
    expect(decideRestart([1, 2, 3, 4, 5, 6], 6, DEFAULT_RESTART_POLICY)).toEqual({ restart: false, deaths: 6 });
  });

  it("says what happened, when it restarts and when it gives up", () => {
    expect(describeExit(null, "SIGKILL")).toBe("killed by SIGKILL");
    expect(describeExit(3, null)).toBe("exited with code 3");
    expect(restartLine("observer", "killed by SIGKILL", { restart: true, attempt: 2, delayMs: 1000 }, p, "/l/observer.log")).toBe(
      "warning: observer killed by SIGKILL; restarting it in 1 s (restart 2 of 3 within 60 s); log /l/observer.log",
    );
    expect(restartLine("observer", "exited with code 1", { restart: false, deaths: 4 }, p, "/l/observer.log")).toMatch(/^error: observer exited with code 1: it died 4 times within 60 s; giving up on it after 3 restarts/);
  });

  it("a restart asks for the port the service had: the API's for the executor and planner, metrics for the others", () => {
    expect(pinnedPort("executor", 4100)).toEqual({ HTTP_PORT: "4100" });
    expect(pinnedPort("planner", 4101)).toEqual({ HTTP_PORT: "4101" });
    expect(pinnedPort("observer", 4102)).toEqual({ METRICS_PORT: "4102" });
    expect(pinnedPort("node-agent", 4103)).toEqual({ METRICS_PORT: "4103" });
  });
});

describe("the healer, with real processes", () => {
  const sleeper = (): ChildProcess => spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
  const kill = (m: Healable) => m.proc.kill("SIGKILL");

  it("restarts a service that dies, follows the new process, and gives up after the allowed restarts", async () => {
    const lines: string[] = [];
    let restarted = 0;
    const m: Healable = {
      name: "observer",
      engine: false,
      proc: sleeper(),
      restart() {
        m.proc = sleeper();
        return Promise.resolve();
      },
    };
    const healer = createStackHealer({ policy: { attempts: 2, windowMs: 60_000, baseDelayMs: 50, maxDelayMs: 100 }, say: (l) => lines.push(l), logFile: (n) => `/logs/${n}.log`, onRestarted: () => restarted++ });
    healer.watch([m]);
    try {
      for (const n of [1, 2]) {
        const before = m.proc.pid;
        kill(m);
        await waitFor(`restart ${n}`, () => restarted === n, 10_000, 20);
        expect(m.proc.pid).not.toBe(before);
        expect(lines).toContain(`observer restarted (pid ${m.proc.pid})`);
      }
      expect(lines.filter((l) => l.startsWith("warning: observer killed by SIGKILL; restarting it in"))).toHaveLength(2);
      kill(m);
      await waitFor("given up", () => lines.find((l) => l.startsWith("error: observer killed by SIGKILL: it died 3 times")), 10_000, 20);
      expect(restarted).toBe(2);
    } finally {
      healer.stop();
      m.proc.kill("SIGKILL");
    }
  });

  it("an engine is not restarted but reported; nothing is restarted once the stack stops", async () => {
    const lines: string[] = [];
    let restarts = 0;
    const engine: Healable = { name: "nats-server", engine: true, proc: sleeper() };
    const svc: Healable = { name: "executor", engine: false, proc: sleeper(), restart: () => Promise.resolve(void restarts++) };
    const healer = createStackHealer({ policy: p, say: (l) => lines.push(l), logFile: (n) => `/logs/${n}.log`, onRestarted: () => undefined });
    healer.watch([engine, svc]);
    kill(engine);
    await waitFor("engine reported", () => lines.find((l) => l.startsWith("error: nats-server killed by SIGKILL; steward up does not restart its engines")), 10_000, 20);
    healer.stop();
    const gone = new Promise((r) => svc.proc.once("exit", r));
    kill(svc);
    await gone;
    // The healer's exit listener ran before ours (it was added first), and it says "restarting it in" in the same
    // step in which it schedules a restart: no line, no restart.
    expect(lines.some((l) => l.includes("executor"))).toBe(false);
    expect(restarts).toBe(0);
  });
});

/**
 * A node-agent killed with kill -9 leaves its children running (it cannot take them along); the agent started after it
 * must not start them a second time. Three `process` services (one spawns a helper of its own, one was started by a
 * signed command although `autostart: false`), the agent a real process, NATS and the observer real: kill -9 the
 * agent, start a new one → each service runs exactly once (counted by a marker in the argv of every process, helper
 * included), fresh (new pids), and the world shows all three running and healthy.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readWorld } from "@steward/world/world-store";
import { NodeCommandReply, signNodeCommand } from "@steward/contracts/node-command";
import { commandSubject } from "@steward/contracts/subjects";
import { openWorldBucket, type KV } from "@steward/platform/bus";
import { freePort, stopProcess, unlessExited, waitFor } from "@steward/testkit";
import { startStack, type Stack } from "./support/stack.js";
import { spawnService, type ServiceProcess } from "./support/service-process.js";

/** Every process of this run carries `steward-e2e-<run>:<service>:<role>` in its argv. */
const RUN = randomBytes(6).toString("hex");
const SERVICES = ["web", "api", "worker"] as const;

/** An HTTP service with /health; `helper` also spawns a child of its own (same process group, its own marker). */
function service(name: string, port: number, helper: boolean): string {
  const spawnHelper = helper ? `require('child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', 'steward-e2e-${RUN}:${name}:helper'], { stdio: 'ignore' });` : "";
  const js = `${spawnHelper}require('http').createServer((q, s) => s.end('ok')).listen(${port}, '127.0.0.1')`;
  return `      ${name}:
        kind: process
        command: [${JSON.stringify(process.execPath)}, "-e", ${JSON.stringify(js)}, "steward-e2e-${RUN}:${name}:main"]
        autostart: ${name !== "worker"}
        health:
          - { type: http, url: "http://127.0.0.1:${port}/", interval: 300ms, timeout: 1s, retries: 2 }
`;
}

/** pids whose argv holds the marker of `svc` and `role`, from /proc. */
async function processesOf(svc: string, role: "main" | "helper"): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const cmd = await readFile(`/proc/${name}/cmdline`, "utf8").catch(() => "");
    const stat = await readFile(`/proc/${name}/stat`, "utf8").catch(() => "");
    // Zombies (exited, not reaped) do not run.
    if (cmd.split("\0").includes(`steward-e2e-${RUN}:${svc}:${role}`) && !/\) Z /.test(stat)) out.push(Number(name));
  }
  return out;
}

describe("a node-agent killed -9 and started again", () => {
  let stack: Stack;
  let kv: KV;
  let agent: ServiceProcess;
  let agentEnv: Record<string, string>;

  const node = async () => {
    const r = await readWorld(kv);
    return r.ok ? r.value.world.nodes["n1"] : undefined;
  };
  /** Resolves with the node once every service runs healthy with a pid (and `ok` holds for it). */
  const allHealthy = (what: string, ok: (n: NonNullable<Awaited<ReturnType<typeof node>>>) => boolean = () => true) =>
    waitFor(what, async () => {
      const n = await node();
      return n && SERVICES.every((s) => n.services[s]?.state === "running" && n.services[s]?.health === "healthy" && n.services[s]?.pid) && ok(n) ? n : undefined;
    }, 60_000, 100, unlessExited(agent)).catch((err: Error) => {
      throw new Error(`${err.message}\n${agent.output.slice(-4000)}`);
    });

  beforeAll(async () => {
    const ports = [await freePort(), await freePort(), await freePort()];
    stack = await startStack({
      dbPrefix: "steward_agent_restart",
      fleet: `version: 1\nnodes:\n  n1:\n    services:\n${service("web", ports[0]!, true)}${service("api", ports[1]!, false)}${service("worker", ports[2]!, false)}`,
      beforeServices: async ({ nc }) => {
        kv = await openWorldBucket(nc);
      },
      observer: true,
      nodes: ["n1"],
    });
    agentEnv = { NODE_NAME: "n1", NATS_URL: stack.nats.url, ...stack.natsEnv("node.n1"), FLEET_SPEC: stack.fleetPath, ...stack.agentKeys, HEARTBEAT_MS: "500", STOP_GRACE_MS: "2000", STATE_DIR: join(stack.dir, "state"), LOG_DIR: join(stack.dir, "logs"), METRICS_PORT: "0" };
    agent = spawnService("node-agent", agentEnv);
    // `worker` is autostart: false: started by a signed command, as an approved action would.
    // A fresh command each try (the agent refuses one issued before it started).
    const body = () => ({ id: `cmd-${randomUUID()}`, node: "n1", op: "start" as const, service: "worker", action_id: null, issued_at: new Date().toISOString(), expires_at: new Date(Date.now() + 60_000).toISOString() });
    const reply = await waitFor("the agent takes commands", async () => {
      const res = await stack.nc.request(commandSubject("n1"), JSON.stringify(signNodeCommand(body(), stack.commandKeys.signing)), { timeout: 5000 }).catch(() => undefined);
      return res ? NodeCommandReply.parse(res.json()) : undefined;
    }, 60_000, 200, unlessExited(agent));
    expect(reply.ok, JSON.stringify(reply)).toBe(true);
  }, 120_000);

  afterAll(async () => {
    if (agent) await stopProcess(agent.child, 20_000).catch(() => undefined);
    // Anything of this run still running (a failed assertion above) goes too.
    for (const svc of SERVICES) for (const role of ["main", "helper"] as const) for (const pid of await processesOf(svc, role)) process.kill(pid, "SIGKILL");
    await stack?.stop();
    if (stack?.dir) await rm(stack.dir, { recursive: true, force: true });
  }, 60_000);

  it("each service runs exactly once, fresh, and healthy in the world", async () => {
    const first = await allHealthy("three services healthy under the first agent");
    const before = Object.fromEntries(SERVICES.map((s) => [s, first.services[s]!.pid!]));
    for (const s of SERVICES) expect(await processesOf(s, "main"), s).toEqual([before[s]]);
    expect(await processesOf("web", "helper")).toHaveLength(1);

    const exited = new Promise((r) => agent.child.once("exit", r));
    agent.child.kill("SIGKILL");
    await exited;
    // What kill -9 leaves: every child still running, orphaned.
    for (const s of SERVICES) expect(await processesOf(s, "main"), s).toEqual([before[s]]);
    expect(await processesOf("web", "helper")).toHaveLength(1);

    agent = spawnService("node-agent", agentEnv);
    const after = await allHealthy("three services healthy under the new agent", (n) => n.agent_started_at !== first.agent_started_at && SERVICES.every((s) => n.services[s]!.pid !== before[s]));
    for (const s of SERVICES) {
      expect(await processesOf(s, "main"), s).toEqual([after.services[s]!.pid]);
      expect(after.services[s]!.pid).not.toBe(before[s]);
    }
    // The old helper went with its group; the new web started one of its own.
    expect(await waitFor("one helper", async () => ((await processesOf("web", "helper")).length === 1 ? true : undefined), 10_000, 100)).toBe(true);
    expect(agent.output).toMatch(/left running by an earlier agent of this node: stopping its process group to start it fresh/);
    expect(agent.output.match(/left running by an earlier agent/g)).toHaveLength(3);
  }, 120_000);
});

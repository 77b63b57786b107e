/**
 * Commands only the executor can sign, seen from an attacker on the bus: a real nats-server, the node-agent a real
 * process (its built main.js, as a node runs it), a `process` service it supervises. Whoever can publish on the node's
 * command subject sends: a command signed with another Ed25519 key; a captured valid command, replayed at once and
 * again after the agent was killed -9 and started again; a validly signed command issued before the agent started;
 * one past its expiry; one living longer than the agent's bound. Each is refused with its reason, logged, and the
 * service is untouched (same pid, same start count); a fresh command still works, so the refusals are not an agent
 * that refuses everything.
 *
 * The agent runs with a 5-minute clock-skew allowance, so a replay after the restart is refused by the seen-command
 * ids it keeps in STATE_DIR, not by the "issued before start" rule (which has its own case).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newCommandKeyPair, type CommandSigningKey } from "@steward/contracts/command-keys";
import { NodeCommandReply, signNodeCommand, type NodeCommandBody } from "@steward/contracts/node-command";
import { NodeEvent } from "@steward/contracts/events";
import { commandSubject } from "@steward/contracts/subjects";
import { ensureStreams, type NatsConnection } from "@steward/platform/bus";
import { startNats, stopProcess, unlessExited, waitFor, type NatsServerHandle } from "@steward/testkit";
import { spawnService, type ServiceProcess } from "./support/service-process.js";
import { natsSecurity, TEST_HARNESS_IDENTITY, type NatsSecurity } from "./support/secure-nats.js";

const NODE = "sig1";
const executor = newCommandKeyPair();
const attacker = newCommandKeyPair();

interface Beat {
  startedAt: string;
  web: { state: string; pid: number | undefined; starts: number } | undefined;
  at: number;
}

describe("node commands: signed by the executor alone, once, in their time", () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  let executorNc: NatsConnection;
  let security: NatsSecurity;
  let dir: string;
  let agent: ServiceProcess | undefined;
  let env: Record<string, string>;
  const beats: Beat[] = [];

  const send = async (payload: string): Promise<NodeCommandReply> => NodeCommandReply.parse((await executorNc.request(commandSubject(NODE), payload, { timeout: 10_000 })).json());
  const signed = (body: NodeCommandBody, key: CommandSigningKey = executor.signing) => JSON.stringify(signNodeCommand(body, key));
  const body = (over: Partial<NodeCommandBody> = {}): NodeCommandBody => {
    const now = Date.now();
    return { id: `cmd-${randomUUID()}`, node: NODE, op: "restart", service: "web", action_id: null, issued_at: new Date(now).toISOString(), expires_at: new Date(now + 60_000).toISOString(), ...over };
  };
  /** The first heartbeat of the current agent sent after `since` (ms) in which web runs. */
  const beatAfter = (since: number, startedAfter = "") =>
    waitFor("a heartbeat with web running", () => beats.find((b) => b.at > since && b.startedAt > startedAfter && b.web?.state === "running" && b.web.pid), 60_000, 50, unlessExited(...(agent ? [agent] : []))).catch((err: Error) => {
      throw new Error(`${err.message}\n${agent?.output.slice(-3000) ?? ""}`);
    });

  beforeAll(async () => {
    security = await natsSecurity([NODE]);
    nats = await startNats({ config: security.config });
    nc = await security.connect(nats.url, TEST_HARNESS_IDENTITY, "command-signing-test");
    // Commands come through the executor's own NATS identity, as in a deployment: only the signature tells them apart.
    executorNc = await security.connect(nats.url, "executor", "command-signing-executor");
    await ensureStreams(nc);
    dir = await mkdtemp(join(tmpdir(), "steward-command-signing-"));
    const fleet = join(dir, "fleet.yaml");
    await writeFile(fleet, `version: 1\nnodes:\n  ${NODE}:\n    services:\n      web:\n        kind: process\n        command: [${JSON.stringify(process.execPath)}, "-e", "setInterval(() => {}, 1000)"]\n`);
    nc.subscribe(`steward.events.${NODE}.heartbeat`, {
      callback: (_e, m) => {
        const ev = NodeEvent.safeParse(m.json());
        if (!ev.success || ev.data.type !== "heartbeat") return;
        const web = ev.data.services.find((s) => s.service === "web");
        beats.push({ startedAt: ev.data.started_at, web: web && { state: web.state, pid: web.pid, starts: web.starts }, at: Date.now() });
      },
    });
    env = {
      NODE_NAME: NODE,
      NATS_URL: nats.url,
      ...security.env(`node.${NODE}`),
      FLEET_SPEC: fleet,
      FLEET_KEY: randomBytes(24).toString("hex"),
      NODE_COMMAND_PUBLIC_KEY: executor.publicKey,
      COMMAND_SKEW_MS: "300000",
      COMMAND_MAX_LIFETIME_MS: "3600000",
      STATE_DIR: join(dir, "state"),
      LOG_DIR: join(dir, "logs"),
      HEARTBEAT_MS: "300",
      METRICS_PORT: "0",
    };
  }, 60_000);

  afterAll(async () => {
    if (agent) await stopProcess(agent.child, 10_000).catch(() => undefined);
    await nc?.close().catch(() => undefined);
    await executorNc?.close().catch(() => undefined);
    await nats?.stop();
    await security?.remove();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 30_000);

  it("refuses another key, a replay (also after a kill -9 and restart), a command from before the start, an expired and an overlong one, changing nothing", async () => {
    agent = spawnService("node-agent", env);
    const first = await beatAfter(0);

    // Signed with a key that is not the executor's.
    const forged = await send(signed(body(), attacker.signing));
    expect(forged).toMatchObject({ ok: false, code: "bad_signature", message: expect.stringContaining(executor.signing.publicKey.id) });

    // A valid command, captured by the attacker as it goes by.
    const captured = signed(body());
    expect(await send(captured)).toMatchObject({ ok: true });
    const restarted = await beatAfter(Date.now());
    expect(restarted.web!.pid).not.toBe(first.web!.pid);
    expect(await send(captured)).toMatchObject({ ok: false, code: "replayed" });

    // kill -9: nothing is flushed on the way out; the new agent knows the id from STATE_DIR alone.
    const exited = new Promise((r) => agent!.child.once("exit", r));
    agent.child.kill("SIGKILL");
    await exited;
    agent = spawnService("node-agent", env);
    const b0 = await beatAfter(Date.now(), first.startedAt);
    const startedAt = Date.parse(b0.startedAt);

    const refusals: [string, string, string][] = [
      ["replay after restart", captured, "replayed"],
      ["issued before the agent started", signed(body({ issued_at: new Date(startedAt - 600_000).toISOString(), expires_at: new Date(Date.now() + 300_000).toISOString() })), "issued_before_start"],
      ["past its expiry", signed(body({ issued_at: new Date(Date.now() - 20_000).toISOString(), expires_at: new Date(Date.now() - 10_000).toISOString() })), "expired"],
      ["living longer than the bound", signed(body({ expires_at: new Date(Date.now() + 7_200_000).toISOString() })), "lifetime_too_long"],
      ["another key, after the restart", signed(body(), attacker.signing), "bad_signature"],
    ];
    for (const [what, payload, code] of refusals) expect(await send(payload), what).toMatchObject({ ok: false, code });
    expect(agent.output).toMatch(/"remembered_commands":1\b/);
    const refusedBy = Date.now();
    const after = await beatAfter(refusedBy, first.startedAt);
    expect(after.startedAt).toBe(b0.startedAt);
    expect(after.web).toEqual(b0.web);
    for (const [, , code] of refusals) expect(agent.output).toMatch(new RegExp(`"code":"${code}"[^\\n]*"node command refused"`));

    // The same agent takes a fresh command from the executor: the refusals above were about the commands.
    expect(await send(signed(body()))).toMatchObject({ ok: true });
    const fresh = await beatAfter(Date.now(), first.startedAt);
    expect(fresh.web!.pid).not.toBe(b0.web!.pid);
  }, 180_000);
});

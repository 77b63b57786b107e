/**
 * NATS identities, attacked (issue 13): a real nats-server runs the generated `authorization` block; the observer
 * and a node-agent run as their own processes, each with its seed file. With node A's credentials, nothing another
 * identity owns can be touched, and nothing changes; the legitimate path (A's heartbeat reaches the observer and
 * the world store) still works.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstream, jetstreamManager, openWorldBucket, connectNats, type NatsConnection } from "@steward/platform/bus";
import { newNatsUserKey, planNatsUsers, renderNatsAuthorization, type NatsUser } from "@steward/platform/nats-auth";
import { NATS_COMPONENTS, natsPermissions } from "@steward/contracts/nats-permissions";
import { EVENTS_STREAM, WORLD_BUCKET, commandSubject, eventSubject, nodeEventsSubjects, worldNodeKey } from "@steward/contracts/subjects";
import { newCommandKeyPair } from "@steward/contracts/command-keys";
import { readWorld } from "@steward/world/world-store";
import { startNats, stopProcess, waitFor, type NatsServerHandle } from "@steward/testkit";
import { createNatsSources } from "@steward/planner";
import { spawnService, type ServiceProcess } from "./support/service-process.js";

const A = "node-a";
const B = "node-b";
let nats: NatsServerHandle;
let dir = "";
let users: NatsUser[] = [];
const procs: ServiceProcess[] = [];
const conns: NatsConnection[] = [];

const user = (name: string): NatsUser => users.find((u) => u.name === name)!;
const as = async (name: string, role = "attack"): Promise<NatsConnection> => {
  const nc = await connectNats(nats.url, `${role}-${name}`, { maxReconnectAttempts: 0, reconnect: false, timeout: 5000 }, user(name));
  conns.push(nc);
  return nc;
};
const seedFile = async (name: string): Promise<string> => {
  const f = join(dir, `${name}.nk`);
  await writeFile(f, `${user(name).seed}\n`, { mode: 0o600 });
  return f;
};
/** How many events the stream holds for one node (read as the planner, which may look). */
const eventsOf = async (node: string): Promise<number> => {
  const info = await (await jetstreamManager(await planner())).streams.info(EVENTS_STREAM, { subjects_filter: nodeEventsSubjects(node) });
  return Object.values(info.state.subjects ?? {}).reduce((a, n) => a + n, 0);
};
let plannerNc: NatsConnection | undefined;
const planner = async () => (plannerNc ??= await as("planner", "legit"));
const worldNodes = async (): Promise<Record<string, { last_heartbeat?: string | null }>> => {
  const r = await readWorld(await openWorldBucket(await as("cli", "legit")), 10_000, 500);
  if (!r.ok) throw new Error(`world unreadable: ${r.reason}`);
  return r.value.world.nodes as Record<string, { last_heartbeat?: string | null }>;
};
/** Waits until the server logged a violation naming this subject (the refusal reached the server, not a timeout). */
const violation = (kind: "Publish" | "Subscription", subject: string) =>
  waitFor(`${kind} Violation on ${subject}`, () => nats.log.split("\n").some((l) => l.includes(`${kind} Violation`) && l.includes(subject)), 15_000, 50);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "steward-nats-auth-"));
  users = planNatsUsers([A, B], NATS_COMPONENTS, () => newNatsUserKey());
  nats = await startNats({ config: renderNatsAuthorization(users) });
  const fleet = join(dir, "fleet.yaml");
  await writeFile(fleet, JSON.stringify({ version: 1, nodes: { [A]: { services: {} }, [B]: { services: {} } } }));
  const observer = spawnService("observer", { NATS_URL: nats.url, NATS_NKEY_SEED_FILE: await seedFile("observer"), SNAPSHOT_PATH: join(dir, "world.json"), METRICS_PORT: "0", METRICS_HOST: "127.0.0.1" });
  procs.push(observer);
  await waitFor("observer serving", () => observer.output.includes("serving /metrics"), 60_000, 100);
  const agent = spawnService("node-agent", {
    NATS_URL: nats.url,
    NATS_NKEY_SEED_FILE: await seedFile(`node.${A}`),
    NODE_NAME: A,
    FLEET_SPEC: fleet,
    FLEET_KEY: "fleet-key-for-the-attack-test-1234",
    NODE_COMMAND_PUBLIC_KEY: newCommandKeyPair().publicKey,
    HEARTBEAT_MS: "500",
    LOG_DIR: join(dir, "logs"),
    STATE_DIR: join(dir, "state"),
    METRICS_PORT: "0",
    METRICS_HOST: "127.0.0.1",
  });
  procs.push(agent);
}, 120_000);

afterAll(async () => {
  for (const c of conns) await c.close().catch(() => undefined);
  for (const p of procs) await stopProcess(p.child);
  await nats?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("NATS identities: the legitimate path", () => {
  it("node A's heartbeat reaches the observer and the world store, read as the CLI", async () => {
    await waitFor("node-a in the world", async () => (await worldNodes())[A]?.last_heartbeat, 60_000, 300);
  });

  it("the planner reads node A's events, world and a log tail through its own sources (the real code)", async () => {
    const src = createNatsSources(await planner(), { fleetSpecPath: join(dir, "fleet.yaml"), logTailBytes: 1000, logTailTimeoutMs: 5000 });
    const events = await src.events(A, Date.now() - 600_000, 50);
    expect(events.length).toBeGreaterThan(0);
    expect(events.every((e) => e.node === A)).toBe(true);
    const tail = await src.logTail(A, "none");
    expect(tail).toBeDefined(); // answered (an unknown service is an answer too), over the permitted request/reply path
  });

  it("the executor's request reaches node A's agent and A's answer comes back", async () => {
    const nc = await as("executor");
    const reply = await waitFor("node-a answers", () => nc.request(commandSubject(A), JSON.stringify({ not: "a signed command" }), { timeout: 5000 }).catch(() => undefined), 30_000, 200);
    expect(reply.json<{ ok: boolean }>().ok).toBe(false); // refused (unsigned), but answered over the permitted reply path
  });
});

describe("NATS identities: the attacker's suite (each refused, nothing changes)", () => {
  it("connecting without credentials, or with a key the server does not know, is refused", async () => {
    await expect(connectNats(nats.url, "anonymous", { maxReconnectAttempts: 0, reconnect: false, timeout: 5000 }, null)).rejects.toThrow(/authorization/i);
    await expect(connectNats(nats.url, "stranger", { maxReconnectAttempts: 0, reconnect: false, timeout: 5000 }, newNatsUserKey())).rejects.toThrow(/authorization/i);
  });

  it("with node A's credentials: publishing an event as node B is refused and B has no events", async () => {
    const nc = await as(`node.${A}`);
    const event = { type: "heartbeat", id: "forged-1", node: B, ts: new Date().toISOString(), agent_version: "x", uptime_s: 1 };
    await expect(jetstream(nc).publish(eventSubject(B, "heartbeat"), JSON.stringify(event), { timeout: 3000 })).rejects.toThrow(/permission/i);
    nc.publish(eventSubject(B, "heartbeat"), JSON.stringify(event)); // core publish: dropped by the server
    await violation("Publish", eventSubject(B, "heartbeat"));
    expect(await eventsOf(B)).toBe(0);
    expect((await worldNodes())[B]?.last_heartbeat ?? null).toBeNull();
  });

  it("with node A's credentials: subscribing to node B's commands is refused, and B's commands do not reach A", async () => {
    const nc = await as(`node.${A}`);
    let got = 0;
    let refused: Error | null = null;
    nc.subscribe(commandSubject(B), {
      callback: (err) => {
        if (err) refused = err;
        else got++;
      },
    });
    await violation("Subscription", commandSubject(B));
    const executor = await as("executor");
    // Nobody may listen on B's subject: the executor's request finds no responder.
    await expect(executor.request(commandSubject(B), "{}", { timeout: 2000 })).rejects.toThrow();
    expect(got).toBe(0);
    expect(String(refused)).toMatch(/permission/i);
  });

  it("with node A's credentials: writing the world store is refused and the world is unchanged", async () => {
    const before = await worldNodes();
    const nc = await as(`node.${A}`);
    // Refused at once: not waiting the 60 s a reader gives the observer to create the store (the test's own timeout).
    await expect(openWorldBucket(nc, 1, { waitForOwnerMs: 0 })).rejects.toThrow(/may not create it/);
    const subject = `$KV.${WORLD_BUCKET}.${worldNodeKey(B)}`;
    await expect(jetstream(nc).publish(subject, JSON.stringify({ forged: true }), { timeout: 3000 })).rejects.toThrow(/permission/i);
    await violation("Publish", subject);
    expect(Object.keys(await worldNodes()).sort()).toEqual(Object.keys(before).sort());
    expect((await worldNodes())[B]).toBeUndefined();
  });

  it("only the observer writes world keys, only the supervisor drift keys", async () => {
    const supervisor = await openWorldBucket(await as("supervisor"));
    await expect(supervisor.put(worldNodeKey(B), "{}")).rejects.toThrow(/permission/i);
    await expect((await openWorldBucket(await as("executor"))).put("drift.header", "{}")).rejects.toThrow(/permission/i);
    await expect((await openWorldBucket(await as("planner"))).put(worldNodeKey(A), "{}")).rejects.toThrow(/permission/i);
    // The supervisor's own keys: allowed.
    expect(await supervisor.put("drift.node.attack-test", "{}")).toBeGreaterThan(0);
    await supervisor.delete("drift.node.attack-test");
    expect((await worldNodes())[B]).toBeUndefined();
  });

  it("with node A's credentials: publishing a command is refused; only the executor's reaches B", async () => {
    const bNc = await as(`node.${B}`);
    let got = 0;
    bNc.subscribe(commandSubject(B), {
      callback: (err, m) => {
        if (err) return;
        got++;
        m.respond("{}");
      },
    });
    await bNc.flush();
    const nc = await as(`node.${A}`);
    await expect(nc.request(commandSubject(B), "{}", { timeout: 2000 })).rejects.toThrow(/permission/i);
    await violation("Publish", commandSubject(B));
    expect(got).toBe(0);
    await (await as("executor")).request(commandSubject(B), "{}", { timeout: 5000 });
    expect(got).toBe(1);
  });

  it("with node A's (or a reader's) credentials: deleting or purging a stream is refused and it keeps its events", async () => {
    const kept = await eventsOf(A);
    expect(kept).toBeGreaterThan(0);
    // Node A cannot even reach the JetStream API; the readers can, but not to delete.
    for (const name of [`node.${A}`, "planner", "cli", "alerter", "executor", "supervisor"]) {
      const nc = await as(name);
      const jsm = await jetstreamManager(nc, { checkAPI: false });
      await expect(jsm.streams.delete(EVENTS_STREAM), name).rejects.toThrow();
      await expect(jsm.streams.purge(EVENTS_STREAM), name).rejects.toThrow();
      await expect(jsm.streams.delete(`KV_${WORLD_BUCKET}`), name).rejects.toThrow();
    }
    await violation("Publish", `$JS.API.STREAM.DELETE.${EVENTS_STREAM}`);
    expect(await eventsOf(A)).toBeGreaterThanOrEqual(kept);
    expect((await worldNodes())[A]).toBeDefined();
  });

  it("a service given a placeholder seed refuses to start: exit 2 naming the setting", async () => {
    const p = spawnService("observer", { NATS_URL: nats.url, NATS_NKEY_SEED: "changeme", SNAPSHOT_PATH: join(dir, "other.json"), METRICS_PORT: "0" });
    const code = await new Promise<number | null>((r) => p.child.once("exit", r));
    expect(code).toBe(2);
    expect(p.output).toMatch(/NATS_NKEY_SEED: .*placeholder/);
    expect(p.output).not.toContain("changeme");
  });

  it("rotating node B's key: after a reload the old seed's open connection is closed and it cannot connect again", async () => {
    const old = user(`node.${B}`);
    const oldNc = await as(`node.${B}`, "rotated");
    const fresh = newNatsUserKey();
    users = users.map((u) => (u.name === old.name ? { ...u, ...fresh, permissions: natsPermissions(u.identity, fresh.publicKey) } : u));
    const conf = join(nats.storeDir, "nats-server.conf");
    const text = await readFile(conf, "utf8");
    await writeFile(conf, text.slice(0, text.indexOf("# Generated by")) + renderNatsAuthorization(users));
    nats.proc.kill("SIGHUP");
    const closed = await Promise.race([oldNc.closed().then(() => "closed"), new Promise((r) => setTimeout(() => r("still open"), 20_000))]);
    expect(closed).toBe("closed");
    await expect(connectNats(nats.url, "rotated-old", { maxReconnectAttempts: 0, reconnect: false, timeout: 5000 }, old)).rejects.toThrow(/authorization/i);
    const nc = await as(`node.${B}`, "rotated");
    expect(nc.isClosed()).toBe(false);
  });

  it("the legitimate services ran without a single permission violation of their own", () => {
    // The server names the client (`"v3.4.0:nats.js:<name>"`) and its nkey on each violation; the attacker's
    // connections are all named attack-*.
    const lines = nats.log.split("\n").filter((l) => /Violation/.test(l));
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.filter((l) => !/nats\.js:(attack|rotated)-/.test(l))).toEqual([]);
  });
});

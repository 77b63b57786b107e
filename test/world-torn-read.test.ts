import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WORLD_HEADER_KEY, WORLD_NODE_PREFIX, worldNodeKey } from "@steward/contracts/subjects";
import { emptyWorld, type WorldState } from "@steward/contracts/world-state";
import { ensureStreams, openWorldBucket, type KV, type NatsConnection } from "@steward/platform/bus";
import { startNats, stopProcess, waitFor, type NatsServerHandle } from "@steward/testkit";
import { reduceWorld } from "@steward/observer";
import { readWorld, readWorldNodes, watchWorld, type WorldCache } from "@steward/world/world-store";
import { makeEvents, publishEvents } from "../services/observer/test/helpers.js";
import { spawnService, type ServiceProcess } from "./support/service-process.js";
import { natsSecurity, TEST_HARNESS_IDENTITY, type NatsSecurity } from "./support/secure-nats.js";

// A single observer killed (kill -9) between a write's node records and its header, through a TCP proxy between the
// observer and nats-server: once armed, the proxy holds back the first world-header publish that follows node-record
// publishes, kills the observer there and drops the connection, so the header never reaches the server. Readers are
// then told the world store is incomplete (never a mixed or smaller world), and read it whole again once an observer
// resumes; the resumed world, counters included, equals the pure fold of the whole stream.

let nats: NatsServerHandle;
let nc: NatsConnection;
let security: NatsSecurity;
let kv: KV;
let dir: string;
let trap: Trap;
const procs: ServiceProcess[] = [];

interface Trap {
  port: number;
  /** From now on, the next header publish after a node-record publish is the kill point. */
  arm(onTrip: () => void): void;
  tripped(): boolean;
  close(): Promise<void>;
}

const NODE_PUB = `PUB $KV.steward_world.${WORLD_NODE_PREFIX}`;
const HEADER_PUB = `PUB $KV.steward_world.${WORLD_HEADER_KEY} `;

async function startTrap(target: number): Promise<Trap> {
  let armed: (() => void) | undefined;
  let tripped = false;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(target, "127.0.0.1");
    sockets.add(client).add(upstream);
    upstream.pipe(client);
    let tail = "";
    let sawNode = false;
    client.on("data", (chunk: Buffer) => {
      if (tripped) return;
      // PUB and HPUB lines; a line split over two chunks is matched with the end of the one before.
      const text = tail + chunk.toString("latin1");
      tail = text.slice(-300);
      if (armed) {
        const header = text.indexOf(HEADER_PUB);
        const node = text.indexOf(NODE_PUB);
        if (node >= 0 && (header < 0 || node < header)) sawNode = true;
        if (header >= 0 && sawNode) {
          tripped = true;
          armed();
          for (const s of sockets) s.destroy();
          return;
        }
        if (header >= 0) sawNode = false;
      }
      upstream.write(chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as { port: number }).port,
    arm: (onTrip) => (armed = onTrip),
    tripped: () => tripped,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

beforeAll(async () => {
  // Identities on, TLS off: the trap reads the plaintext protocol to stop at one exact publish.
  security = await natsSecurity([], { tls: false });
  nats = await startNats({ config: security.config });
  nc = await security.connect(nats.url, TEST_HARNESS_IDENTITY, "torn-read-test");
  await ensureStreams(nc);
  kv = await openWorldBucket(nc);
  dir = await mkdtemp(join(tmpdir(), "world-torn-"));
  trap = await startTrap(nats.port);
});
afterAll(async () => {
  await Promise.all(procs.map((p) => stopProcess(p.child).catch(() => undefined)));
  await trap?.close();
  await nc?.close();
  await nats?.stop();
  await security?.remove();
  await rm(dir, { recursive: true, force: true });
});

function observer(id: string, natsUrl: string): ServiceProcess {
  const p = spawnService("observer", { NATS_URL: natsUrl, ...security.env("observer"), OBSERVER_ID: id, SNAPSHOT_PATH: join(dir, id, "world.json"), SNAPSHOT_DEBOUNCE_MS: "20", METRICS_PORT: "0" });
  procs.push(p);
  return p;
}

async function storeAt(seq: number): Promise<WorldState> {
  return waitFor(
    `the world store at sequence ${seq}`,
    async () => {
      const r = await readWorld(kv);
      return r.ok && r.value.world.last_seq === seq && r.value.world;
    },
    60_000,
    50,
  );
}

describe("world store readers after the observer died in the middle of a write", () => {
  it("kill -9 between node records and header: readers are told incomplete, at once; whole again once an observer resumes", async () => {
    const nodes = Array.from({ length: 40 }, (_, i) => `t${String(i).padStart(2, "0")}`);
    const events = makeEvents(1_200, { seed: 5, nodes, idPrefix: "torn" });
    const a = observer("torn-a", `nats://127.0.0.1:${trap.port}`);
    const first = await publishEvents(nc, events.slice(0, 600));
    const before = await storeAt(first);
    // A reader watching since before the kill.
    const live: WorldCache = watchWorld(kv);
    await live.ready();

    const killed = new Promise<void>((r) => a.child.once("exit", () => r()));
    trap.arm(() => a.child.kill("SIGKILL"));
    const last = await publishEvents(nc, events.slice(600));
    await waitFor("the trap to kill the observer at a header", () => trap.tripped(), 60_000, 10);
    await killed;

    // The store as left: node records newer than the header.
    const head = await kv.get(WORLD_HEADER_KEY);
    const newer: string[] = [];
    for (const n of nodes) {
      const e = await kv.get(worldNodeKey(n));
      if (e && head && e.revision > head.revision) newer.push(n);
    }
    expect(newer.length, "node records written after the last header").toBeGreaterThan(0);
    const older = nodes.find((n) => !newer.includes(n)) as string;

    // One-shot reads: typed incomplete, answered once the store has been quiet (WRITER_QUIET_MS), not after maxWaitMs.
    const t0 = Date.now();
    expect(await readWorld(kv, 30_000, 120_000)).toMatchObject({ ok: false, reason: "snapshot_incomplete" });
    expect(await readWorldNodes(kv, [newer[0] as string], 120_000)).toMatchObject({ ok: false, reason: "snapshot_incomplete" });
    expect(Date.now() - t0).toBeLessThan(60_000);
    // A node whose record is as of the header is that header's node.
    const one = await readWorldNodes(kv, [older]);
    expect(one.ok && one.value.world.last_seq).toBe(JSON.parse(head?.string() ?? "{}").last_seq);
    // A reader loading now: incomplete. The one watching since before: its last whole view, never a mixed one.
    const fresh = watchWorld(kv);
    try {
      await fresh.ready();
      await waitFor("the new watcher's first load", () => fresh.activity().caughtUp, 30_000, 10);
      expect(fresh.read()).toMatchObject({ ok: false, reason: "snapshot_incomplete" });
      const seen = live.read();
      expect(seen.ok).toBe(true);
      if (seen.ok) {
        expect(seen.value.world.last_seq).toBeGreaterThanOrEqual(before.last_seq);
        for (const n of newer) expect(seen.value.world.nodes[n]).not.toEqual(JSON.parse((await kv.get(worldNodeKey(n)))?.string() ?? "null"));
      }

      // An observer resumes (without the dead one's file, as a standby elsewhere would): whole again, for every reader.
      const b = observer("torn-b", nats.url);
      const resumed = await storeAt(last);
      expect(b.output).toContain("reading every node record as stored");
      await waitFor("the new watcher to read the world whole", () => fresh.read().ok, 30_000, 10);
      await waitFor("the old watcher to follow", () => {
        const r = live.read();
        return r.ok && r.value.world.last_seq === last;
      }, 30_000, 10);
      // Nothing folded twice or skipped, and each event counted once: the pure fold of the whole stream.
      const replay = events.reduce((w, e, i) => reduceWorld(w, e, { seq: i + 1 }), emptyWorld());
      expect({ ...resumed, nodes: JSON.parse(JSON.stringify(resumed.nodes)) }).toStrictEqual({ ...replay, nodes: JSON.parse(JSON.stringify(replay.nodes)) });
      expect(resumed.events_applied).toBe(events.length);
    } finally {
      await fresh.stop();
      await live.stop();
    }
  }, 300_000);
});

import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { WORLD_HEADER_KEY } from "@steward/contracts/subjects";
import { emptyWorld, type NodeState, type WorldState } from "@steward/contracts/world-state";
import { connectNats, openWorldBucket, type KV, type NatsConnection } from "@steward/platform/bus";
import { startNats, type NatsServerHandle } from "@steward/testkit";
import { WorldWriteError, createWorldWriter, readWorld } from "../src/world-store.js";
import { clearWorldStore } from "../src/testing.js";

let nats: NatsServerHandle;
let nc: NatsConnection;
let kv: KV;

beforeAll(async () => {
  nats = await startNats();
  nc = await connectNats(nats.url, "world-fencing-test");
  kv = await openWorldBucket(nc);
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});
beforeEach(async () => {
  await clearWorldStore(kv);
});

const T = "2026-12-01T00:00:00.000Z";
const node = (name: string, detail: string): NodeState => ({
  name, status: "up", last_heartbeat: T, heartbeat_interval_ms: 5000, agent_started_at: T, dropped_events: 0, host: null,
  services: { web: { name: "web", state: "running", health: "healthy", starts: 1, declared: true, since: T, updated_at: T, checks: {}, last_event_id: `ev-${detail}`, detail } },
});
const world = (seq: number, detail: string, names = ["a", "b"]): WorldState => {
  const w = emptyWorld();
  w.last_seq = seq;
  for (const n of names) w.nodes[n] = node(n, detail);
  return w;
};
const failure = async (p: Promise<unknown>): Promise<WorldWriteError> => {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(WorldWriteError);
  return err as WorldWriteError;
};

describe("world store fencing (two observers active at once)", () => {
  it("once another writer took over, the old one's next write fails as fenced and readers keep the new one's world", async () => {
    const old = createWorldWriter({ kv, observerId: "old" });
    await old.write(world(10, "old-1"), T);
    await old.write(world(11, "old-2"), T);
    // The standby takes over (the old one is stopped): its first write is unconditional and rewrites every node.
    const next = createWorldWriter({ kv, observerId: "new" });
    await next.write(world(20, "new-1"), T);

    // The old one resumes and writes what it folded meanwhile: refused before its header.
    const err = await failure(old.write(world(12, "old-3"), T));
    expect(err.fenced).toBe(true);
    const seen = await readWorld(kv);
    expect(seen.ok && seen.value.observer_id).toBe("new");
    expect(seen.ok && seen.value.world.last_seq).toBe(20);
    expect(seen.ok && seen.value.world.nodes["a"]?.services["web"]?.detail).toBe("new-1");

    // The new one goes on writing conditionally, undisturbed.
    await next.write(world(21, "new-2"), T);
    const after = await readWorld(kv);
    expect(after.ok && after.value.world.last_seq).toBe(21);
  });

  it("a node only the old writer changes is refused too, and a node it deleted cannot be re-created over the new one's", async () => {
    const old = createWorldWriter({ kv, observerId: "old" });
    await old.write(world(10, "old-1", ["a", "b", "c"]), T);
    await old.write(world(11, "old-2", ["a", "b"]), T); // c removed by the old one
    const next = createWorldWriter({ kv, observerId: "new" });
    await next.write(world(20, "new-1", ["a", "b", "c"]), T); // c is back in the new one's world
    // Only c changes in the old one's next write: it was deleted by it, and exists now: refused.
    const w = world(11, "old-2", ["a", "b"]);
    w.nodes["c"] = node("c", "old-3");
    const oldNext = { ...w, last_seq: 12 };
    const err = await failure(old.write(oldNext, T));
    expect(err.fenced).toBe(true);
    const seen = await readWorld(kv);
    expect(seen.ok && seen.value.world.nodes["c"]?.services["web"]?.detail).toBe("new-1");
  });

  it("a writer that was fenced starts over: its next write is a first write again (every node, unconditional)", async () => {
    const old = createWorldWriter({ kv, observerId: "old" });
    await old.write(world(10, "old-1"), T);
    await createWorldWriter({ kv, observerId: "new" }).write(world(20, "new-1"), T);
    expect((await failure(old.write(world(11, "old-2"), T))).fenced).toBe(true);
    // What the observer does after confirming it still holds the lock (the other writer had none).
    const r = await old.write(world(12, "old-3"), T);
    expect(r.nodesWritten).toBe(2);
    const seen = await readWorld(kv);
    expect(seen.ok && seen.value.observer_id).toBe("old");
  });

  it("a foreign write to the header alone fences the writer too (nothing it writes can read as complete over it)", async () => {
    const w = createWorldWriter({ kv, observerId: "solo", maxRecordBytes: 1 << 20 });
    await w.write(world(1, "x"), T);
    await kv.put(WORLD_HEADER_KEY, "{}"); // not a conflict with node records, but with the header's revision
    const err = await failure(w.write(world(2, "y"), T));
    expect(err.fenced).toBe(true);
    expect(err.failures.map((f) => f.key)).toEqual([WORLD_HEADER_KEY]);
  });
});

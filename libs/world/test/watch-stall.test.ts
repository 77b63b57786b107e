import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WORLD_BUCKET } from "@steward/contracts/subjects";
import { emptyWorld, type NodeState, type WorldState } from "@steward/contracts/world-state";
import { connectNats, jetstreamManager, openWorldBucket, type KV, type NatsConnection } from "@steward/platform/bus";
import { startNats, waitFor, type NatsServerHandle } from "@steward/testkit";
import { watchStalled, type WatchProbe, type WatchRestart } from "../src/kv-cache.js";
import { createWorldWriter, readWorld, watchWorld, type WorldCache } from "../src/world-store.js";

describe("watchStalled (pure)", () => {
  const cases: [string, WatchProbe | undefined, WatchProbe, boolean][] = [
    ["first check: nothing to compare with", undefined, { stored: 9, seen: 3 }, false],
    ["current at both checks", { stored: 5, seen: 5 }, { stored: 7, seen: 7 }, false],
    ["behind at the earlier check only: caught up since", { stored: 5, seen: 3 }, { stored: 5, seen: 5 }, false],
    ["behind now, current at the earlier check: a write just landed", { stored: 5, seen: 5 }, { stored: 6, seen: 5 }, false],
    ["behind at both, but it delivered records in between: busy, not stalled", { stored: 9, seen: 3 }, { stored: 12, seen: 8 }, false],
    ["behind at both, nothing delivered in between: stalled", { stored: 9, seen: 3 }, { stored: 9, seen: 3 }, true],
    ["behind at both, store moved on, nothing delivered: stalled", { stored: 9, seen: 3 }, { stored: 14, seen: 3 }, true],
    ["an empty store is never behind", { stored: 0, seen: 0 }, { stored: 0, seen: 0 }, false],
    ["store purged below what was seen: not behind", { stored: 2, seen: 7 }, { stored: 2, seen: 7 }, false],
  ];
  it.each(cases)("%s", (_name, prev, now, want) => {
    expect(watchStalled(prev, now)).toBe(want);
  });
});

const T = "2026-12-01T00:00:00.000Z";

function node(name: string, gen: number): NodeState {
  return { name, status: "up", last_heartbeat: T, heartbeat_interval_ms: 5000, agent_started_at: T, dropped_events: gen, host: null, services: {} };
}

function world(nodes: number, gen: number): WorldState {
  const w = emptyWorld();
  w.last_seq = gen;
  for (let i = 0; i < nodes; i++) w.nodes[`n${i}`] = node(`n${i}`, i === gen % nodes ? gen : 0);
  return w;
}

describe("a world watch whose consumer is lost (real nats-server)", () => {
  let nats: NatsServerHandle;
  let writerNc: NatsConnection;
  let readerNc: NatsConnection;
  let outsideNc: NatsConnection;
  let kv: KV;
  let cache: WorldCache | undefined;

  beforeAll(async () => {
    nats = await startNats();
    writerNc = await connectNats(nats.url, "stall-writer");
    readerNc = await connectNats(nats.url, "stall-reader");
    outsideNc = await connectNats(nats.url, "stall-outside");
    kv = await openWorldBucket(writerNc);
  });

  afterAll(async () => {
    await cache?.stop();
    await Promise.all([writerNc?.close(), readerNc?.close(), outsideNc?.close()]);
    await nats?.stop();
  });

  it("is restarted after the last record it delivered and catches up: the cache ends equal to the store", async () => {
    const writer = createWorldWriter({ kv, observerId: "obs-1" });
    let gen = 1;
    await writer.write(world(20, gen), T);
    const restarts: WatchRestart[] = [];
    const readerKv = await openWorldBucket(readerNc);
    cache = watchWorld(readerKv, { checkMs: 300, onRestart: (r) => restarts.push(r) });
    const c = cache;
    await c.ready();
    await waitFor("the first write in the cache", () => {
      const r = c.read();
      return r.ok && r.value.world.last_seq === 1;
    });

    // Lose the watch's consumer the way a dying server loses it: the reader's connection stays up, nothing tells it.
    const jsm = await jetstreamManager(outsideNc);
    const stream = `KV_${WORLD_BUCKET}`;
    const names: string[] = [];
    // The writer's key listings leave headers-only consumers behind for a while: the watch is the other one.
    for await (const ci of jsm.consumers.list(stream)) if (ci.config.headers_only !== true) names.push(ci.name);
    expect(names.length).toBe(1);
    for (const n of names) await jsm.consumers.delete(stream, n);

    // A write the silent watch never delivers: the store is now ahead of what the cache saw, and stays so at the next
    // checks (nats.js alone would notice only after two missed 30 s heartbeats).
    gen++;
    await writer.write(world(20, gen), T);
    await waitFor("the stalled watch restarted", () => restarts.length > 0, 30_000);
    expect(restarts[0]).toMatchObject({ reason: "stalled", filter: "world.>" });
    expect(restarts[0]?.stored).toBeGreaterThan(restarts[0]?.resumeAfter ?? Infinity);

    // One more write after the writes stopped: the restarted watch delivers it too.
    gen++;
    await writer.write(world(20, gen), T);
    const store = await readWorld(kv);
    expect(store.ok).toBe(true);
    if (!store.ok) return;
    expect(store.value.world.last_seq).toBe(gen);
    const caught = await waitFor("the cache caught up with the store", () => {
      const r = c.read();
      return r.ok && r.value.world.last_seq === gen ? r : undefined;
    }, 30_000);
    expect(caught.value).toEqual(store.value);
    // The consumer was lost once: one restart, not one per check.
    expect(restarts.length).toBe(1);
  }, 90_000);
});

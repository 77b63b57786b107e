import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { EVENTS_STREAM, eventSubject } from "@steward/contracts/subjects";
import { connectNats, ensureStreams, jetstream, jetstreamManager, openWorldBucket, type NatsConnection } from "@steward/platform/bus";
import { createRegistry } from "@steward/platform/metrics";
import { silentLogger } from "@steward/platform/logger";
import { startNats, stopProcess, waitFor, type NatsServerHandle } from "@steward/testkit";
import { createObserver } from "../src/observer.js";
import { loadSnapshotFromFile as readSnapshotFile } from "@steward/world/read";
import { clearWorldStore } from "@steward/world/testing";
import { readWorldNodes } from "@steward/world/world-store";
import { makeEvents, prng } from "./helpers.js";

const MAIN = join(dirname(fileURLToPath(import.meta.url)), "..", "dist", "main.js");
const KILLS = 20;

let nats: NatsServerHandle;
let nc: NatsConnection;
let dir: string;

beforeAll(async () => {
  nats = await startNats();
  nc = await connectNats(nats.url, "crash-test");
  await ensureStreams(nc);
  dir = await mkdtemp(join(tmpdir(), "observer-crash-"));
});
afterAll(async () => {
  await nc?.close();
  await nats?.stop();
  await rm(dir, { recursive: true, force: true });
});

function launch(snapshotPath: string): ChildProcess {
  return spawn(process.execPath, [MAIN], {
    env: {
      ...process.env,
      NATS_URL: nats.url,
      SNAPSHOT_PATH: snapshotPath,
      SNAPSHOT_DEBOUNCE_MS: "2",
      STALE_CHECK_MS: "1000",
      METRICS_PORT: "0",
      OBSERVER_ID: "crash-child",
      LOG_LEVEL: "info",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("crash safety", () => {
  it("kill -9 many times while writing: every snapshot on disk is valid, and the restarted observer reaches the full-replay world", async () => {
    const path = join(dir, "child", "world.json");
    const events = makeEvents(6000, { seed: 99, nodes: ["c1", "c2", "c3"] });
    const js = jetstream(nc);
    const kv = await openWorldBucket(nc);

    // Publish continuously while the observer is killed and restarted.
    let published = 0;
    let publishing = true;
    // Paced (not a wait for anything): a steady stream over the whole run of kills.
    const publisher = (async () => {
      while (publishing && published < events.length) {
        const batch = events.slice(published, published + 20);
        await Promise.all(batch.map((e) => js.publish(eventSubject(e.node, e.type), JSON.stringify(e), { msgID: e.id })));
        published += batch.length;
        await sleep(50);
      }
    })();

    const rnd = prng(1234);
    let lastSeq = 0;
    let sawSnapshot = false;
    let output = "";
    for (let i = 0; i < KILLS; i++) {
      const child = launch(path);
      let connected = false;
      let ready = false;
      child.stdout?.on("data", (d: Buffer) => {
        const text = d.toString();
        output += text;
        if (text.includes("connected to NATS")) connected = true;
        if (text.includes("observer started")) ready = true;
      });
      child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
      if (i % 2 === 0) {
        // Anywhere from start-up on: loading, recreating the consumer, the first writes. The random delay counts from the
        // child's first log line (it runs and has connected), not from spawn(): under load the child may not even have
        // started Node.js within the delay, and a kill then tests nothing.
        await waitFor("child observer connected", () => connected || child.exitCode !== null, 30_000, 5);
        await sleep(Math.floor(rnd() * 700));
      } else {
        // While folding and writing under a steady stream.
        await waitFor("child observer started", () => ready || child.exitCode !== null, 30_000, 5);
        // A busy machine can starve the child: kill only once it has folded past the last snapshot file (or caught up), so
        // every other run is a kill in the middle of real writing, not another kill during start-up. The signal is the
        // world store's header, written within SNAPSHOT_DEBOUNCE_MS of each fold; the file's own interval adapts to its
        // cost (up to 30 s), so it cannot tell whether the child folds.
        await waitFor(
          "child to fold past the last snapshot",
          async () => {
            const r = await readWorldNodes(kv, []);
            return child.exitCode !== null || (r.ok && (r.value.world.last_seq > lastSeq || (published === events.length && r.value.world.last_seq >= published)));
          },
          60_000,
          10,
        );
        await sleep(Math.floor(rnd() * 250));
      }
      child.kill("SIGKILL");
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once("exit", r)));
      const r = await readSnapshotFile(path);
      if (r.ok) {
        sawSnapshot = true;
        // The snapshot never goes back in the stream.
        expect(r.value.world.last_seq).toBeGreaterThanOrEqual(lastSeq);
        lastSeq = r.value.world.last_seq;
      } else {
        // Before the first write there is no file; once written, it is always whole.
        expect({ kill: i, reason: r.reason, sawSnapshot }).toEqual({ kill: i, reason: "snapshot_missing", sawSnapshot: false });
      }
    }
    publishing = false;
    await publisher;
    expect(sawSnapshot).toBe(true);
    expect(lastSeq).toBeGreaterThan(0);
    // No run found a torn file or died on its own (pino levels: 50 error, 60 fatal).
    expect(output).not.toMatch(/snapshot file unusable|"level":60/);

    const jsm = await jetstreamManager(nc);
    const streamSeq = (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
    expect(streamSeq).toBe(published);

    // A last, clean run: it resumes and catches up, then drains on SIGTERM with exit status 0.
    const final = launch(path);
    let finalOut = "";
    final.stdout?.on("data", (d: Buffer) => (finalOut += d.toString()));
    await waitFor("final observer serving", () => finalOut.includes("serving /metrics"), 30_000, 10);
    await waitFor(
      "restarted observer to catch up",
      async () => {
        const r = await readWorldNodes(kv, []);
        return r.ok && r.value.world.last_seq === streamSeq;
      },
      60_000,
      50,
    );
    const exit = new Promise<number | null>((r) => final.once("exit", (code) => r(code)));
    await stopProcess(final);
    expect(await exit).toBe(0);
    // Draining on SIGTERM writes the last snapshot file, whatever its adaptive interval.
    const last = await readSnapshotFile(path);
    if (!last.ok) throw new Error(`snapshot file after a clean stop: ${last.reason}: ${last.detail}`);
    const finalSnap = last.value;
    expect(finalSnap.world.last_seq).toBe(streamSeq);
    expect((await readdir(dirname(path))).filter((n) => n.endsWith(".tmp"))).toEqual([]);

    // Full replay, in-process, from nothing: fresh file, no KV snapshot.
    await clearWorldStore(kv);
    const replay = createObserver({
      config: { snapshotPath: join(dir, "replay", "world.json"), observerId: "replay", snapshotDebounceMs: 20, staleCheckMs: 1000, missedHeartbeats: 3, snapshotMaxIntervalMs: 5000, streamReplicas: 1 },
      nc,
      logger: silentLogger(),
      registry: createRegistry("observer", false),
    });
    await replay.start();
    try {
      const replayed = await waitFor("full replay", () => replay.world().last_seq === streamSeq && replay.world(), 60_000, 20);
      // Every node, the sequence and the counters equal the full replay's, also after kills between a write's node
      // records and its header (events already in those records are counted when read again: reduce.ts, seenInNode).
      expect(replayed).toStrictEqual(finalSnap.world);
      expect(replayed.events_applied).toBe(published);
    } finally {
      await replay.stop();
    }
  }, 600_000);
});

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectNats, ensureStreams, jetstream, type NatsConnection } from "@steward/platform/bus";
import { eventSubject, logTailSubject } from "@steward/contracts/subjects";
import { startNats, type NatsServerHandle } from "@steward/testkit";
import { createNatsSources } from "../src/sources.js";

let nats: NatsServerHandle;
let nc: NatsConnection;
let dir: string;

beforeAll(async () => {
  nats = await startNats();
  nc = await connectNats(nats.url, "planner-sources-test");
  await ensureStreams(nc);
  dir = await mkdtemp(join(tmpdir(), "planner-sources-"));
  await writeFile(join(dir, "fleet.yaml"), "version: 1\nnodes:\n  n1:\n    services:\n      api: { kind: process, command: [sleep, '1'] }\n");
});

afterAll(async () => {
  await nc?.close();
  await Promise.all([nats?.stop(), dir ? rm(dir, { recursive: true, force: true }) : undefined]);
});

describe("NATS evidence sources", () => {
  it("reads a node's recent events, the spec, and a log tail over request/reply", async () => {
    const js = jetstream(nc);
    const ts = new Date().toISOString();
    for (let i = 0; i < 5; i++) {
      await js.publish(eventSubject("n1", "service"), JSON.stringify({ type: "service", id: `ev-n1-${i}-abcdef`, node: "n1", ts, service: "api", state: "exited", health: "none", exit_code: 1 }));
    }
    await js.publish(eventSubject("n2", "service"), JSON.stringify({ type: "service", id: "ev-n2-0-abcdef", node: "n2", ts, service: "db", state: "running", health: "healthy" }));
    const sub = nc.subscribe(logTailSubject("n1"), { callback: (_e, m) => void m.respond(JSON.stringify({ ok: true, node: "n1", service: "api", text: "boom\n", bytes: 5, truncated: false })) });
    // A fetch that would wait 30 s for more: the read must stop as soon as nothing is pending, long before that.
    const src = createNatsSources(nc, { fleetSpecPath: join(dir, "fleet.yaml"), logTailBytes: 1024, logTailTimeoutMs: 10_000, eventsFetchExpiresMs: 30_000 });
    const t0 = Date.now();
    const events = await src.events("n1", Date.now() - 60_000, 3);
    expect(events.map((e) => e.id)).toEqual(["ev-n1-2-abcdef", "ev-n1-3-abcdef", "ev-n1-4-abcdef"]);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(await src.events("n9", 0, 10)).toEqual([]);
    expect(Object.keys((await src.spec()).nodes)).toEqual(["n1"]);
    expect(await src.logTail("n1", "api")).toMatchObject({ ok: true, text: "boom\n" });
    expect(await src.world()).toBeUndefined();
    sub.unsubscribe();
  });
});

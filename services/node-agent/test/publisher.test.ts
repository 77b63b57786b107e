import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { connectNats, ensureStreams, type NatsConnection } from "@steward/platform/bus";
import { createRegistry } from "@steward/platform/metrics";
import { silentLogger } from "@steward/platform/logger";
import type { NodeEvent } from "@steward/contracts/events";
import { startNats, waitFor, type NatsServerHandle } from "@steward/testkit";
import { createAgentMetrics } from "../src/metrics.js";
import { EventPublisher, newEventId, type PublishSink } from "../src/publisher.js";
import { metricValue, readStream } from "./helpers.js";

const node = "pubtest";

function hostEvent(n: number, id = newEventId(node)): NodeEvent {
  return { type: "host", id, node, ts: new Date().toISOString(), load1: n, mem_used_pct: 10, disks: [] };
}

function makePublisher(over: { maxInFlight?: number; backlogMax?: number; retryDelayMs?: number } = {}) {
  const registry = createRegistry("node-agent-test", false);
  const publisher = new EventPublisher({
    node,
    maxInFlight: over.maxInFlight ?? 16,
    backlogMax: over.backlogMax ?? 100,
    publishTimeoutMs: 2000,
    retryDelayMs: over.retryDelayMs ?? 20,
    logger: silentLogger(),
    metrics: createAgentMetrics(registry),
  });
  return { publisher, registry };
}

/** A sink whose publishes stay pending until the test settles them. */
function manualSink() {
  const pending: { load1: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  let peak = 0;
  const sink: PublishSink = {
    publish(_subject, data) {
      const load1 = (JSON.parse(new TextDecoder().decode(data)) as { load1: number }).load1;
      return new Promise((resolve, reject) => {
        pending.push({ load1, resolve: () => resolve({ duplicate: false, seq: 1 }), reject });
        peak = Math.max(peak, pending.length);
      });
    },
  };
  return { sink, pending, peak: () => peak };
}

describe("EventPublisher with a fake sink", () => {
  it("never has more than maxInFlight publishes outstanding, and sends in order", async () => {
    const { publisher } = makePublisher({ maxInFlight: 2 });
    const m = manualSink();
    publisher.setSink(m.sink);
    for (let i = 1; i <= 7; i++) publisher.publish(hostEvent(i));
    const sent: number[] = [];
    while (sent.length < 7) {
      await waitFor("a pending publish", () => m.pending.length > 0, 2000, 5);
      expect(m.pending.length).toBeLessThanOrEqual(2);
      const p = m.pending.shift()!;
      sent.push(p.load1);
      p.resolve();
      // The publisher refills the window it just freed (while there is something left to send).
      await waitFor("the window refilled", () => m.pending.length === Math.min(2, 7 - sent.length), 2000, 1);
    }
    expect(m.peak()).toBe(2);
    expect(sent).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(await publisher.flush(500)).toBe(true);
  });

  it("re-sends failed publishes in their original order once nothing is in flight", async () => {
    const { publisher, registry } = makePublisher({ maxInFlight: 3 });
    const m = manualSink();
    publisher.setSink(m.sink);
    for (let i = 1; i <= 5; i++) publisher.publish(hostEvent(i));
    await waitFor("3 in flight", () => m.pending.length === 3, 2000, 5);
    // 1 fails, 2 is still pending, 3 fails: nothing may be re-sent before 2 settles.
    const [p1, p2, p3] = m.pending.splice(0, 3);
    // Time under control: the failures are handled and their retry timer (20 ms) fires while 2 is still in flight.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      p1!.reject(new Error("timeout"));
      p3!.reject(new Error("timeout"));
      await vi.advanceTimersByTimeAsync(100);
      expect(await metricValue(registry, "steward_node_agent_publish_failures_total")).toBe(2);
    } finally {
      vi.useRealTimers();
    }
    expect(m.pending.length).toBe(0);
    p2!.resolve();
    const order: number[] = [];
    while (order.length < 4) {
      await waitFor("a re-send", () => m.pending.length > 0, 2000, 5);
      const p = m.pending.shift()!;
      order.push(p.load1);
      p.resolve();
    }
    expect(order).toEqual([1, 3, 4, 5]);
    expect(await metricValue(registry, "steward_node_agent_publish_failures_total")).toBe(2);
  });

  it("buffers while disconnected and counts what the bounded backlog drops", async () => {
    const { publisher, registry } = makePublisher({ backlogMax: 3 });
    const m = manualSink();
    publisher.setSink(m.sink, false);
    for (let i = 1; i <= 5; i++) publisher.publish(hostEvent(i));
    expect(m.pending.length).toBe(0);
    expect(publisher.dropped).toBe(2);
    expect(publisher.backlog).toBe(3);
    expect(await metricValue(registry, "steward_node_agent_events_dropped_total")).toBe(2);
    expect(await metricValue(registry, "steward_node_agent_backlog_size")).toBe(3);
    publisher.setConnected(true);
    expect(m.pending.map((p) => p.load1)).toEqual([3, 4, 5]);
  });
});

describe("EventPublisher.storedThrough (the events_seq of a command's reply)", () => {
  /** A sink that answers each publish with the stream sequence the test hands it. */
  function seqSink() {
    const pending: { load1: number; ack: (seq: number) => void; fail: (e: Error) => void }[] = [];
    const sink: PublishSink = {
      publish(_subject, data) {
        const load1 = (JSON.parse(new TextDecoder().decode(data)) as { load1: number }).load1;
        return new Promise((resolve, reject) => pending.push({ load1, ack: (seq) => resolve({ duplicate: false, seq }), fail: reject }));
      },
    };
    return { sink, pending };
  }

  it("waits for every event published before the call (in any ack order), not for later ones, and names the highest stored seq", async () => {
    const { publisher } = makePublisher({ maxInFlight: 8 });
    const m = seqSink();
    publisher.setSink(m.sink);
    for (let i = 1; i <= 3; i++) publisher.publish(hostEvent(i));
    let got: number | null | undefined;
    const barrier = publisher.storedThrough(5000).then((v) => (got = v));
    publisher.publish(hostEvent(4)); // after the call: never waited for
    await waitFor("4 publishes in flight", () => m.pending.length === 4, 2000, 5);
    m.pending[2]!.ack(12);
    m.pending[0]!.ack(10);
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r)); // acks settle in microtasks
    expect(got).toBeUndefined(); // the second event is not stored yet
    m.pending[1]!.ack(11);
    await barrier;
    expect(got).toBe(12);
    publisher.close();
  });

  it("answers at once when nothing is outstanding, null when the events are not stored in time, and counts a dropped event as settled", async () => {
    const { publisher } = makePublisher({ maxInFlight: 1, backlogMax: 1 });
    expect(await publisher.storedThrough(10)).toBe(0);
    const m = seqSink();
    publisher.setSink(m.sink, false); // disconnected: nothing goes out
    publisher.publish(hostEvent(1));
    expect(await publisher.storedThrough(50)).toBeNull();
    const barrier = publisher.storedThrough(5000);
    publisher.publish(hostEvent(2)); // the backlog holds one: event 1 is dropped, event 2 came after the call
    expect(publisher.dropped).toBe(1);
    expect(await barrier).toBe(0);
    publisher.close();
  });
});

describe("EventPublisher on a real JetStream", () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await startNats();
    nc = await connectNats(nats.url, "publisher-test");
    await ensureStreams(nc);
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it("stores an event published twice once (Nats-Msg-Id de-duplication)", async () => {
    const { publisher, registry } = makePublisher();
    publisher.attach(nc);
    const ev = hostEvent(42, `${node}-dedupe-0001`);
    publisher.publish(ev);
    publisher.publish(ev);
    expect(await publisher.flush(5000)).toBe(true);
    const stored = (await readStream(nc, node)).filter((m) => m.event.id === ev.id);
    expect(stored).toHaveLength(1);
    expect(stored[0]!.msgId).toBe(ev.id);
    expect(await metricValue(registry, "steward_node_agent_events_published_total", { type: "host" })).toBe(1);
    expect(await metricValue(registry, "steward_node_agent_events_duplicate_total", { type: "host" })).toBe(1);
    publisher.close();
  });

  it("storedThrough names the stream sequence of the last event published before it", async () => {
    const { publisher } = makePublisher();
    publisher.attach(nc);
    const ids = [1, 2, 3].map((i) => `${node}-barrier-${i}-${Date.now()}`);
    ids.forEach((id, i) => publisher.publish(hostEvent(i + 1, id)));
    const seq = await publisher.storedThrough(5000);
    const stored = (await readStream(nc, node)).filter((m) => ids.includes(m.event.id));
    expect(stored.map((m) => m.event.id)).toEqual(ids);
    expect(seq).toBe(stored[2]!.seq);
    publisher.close();
  });

  it("after an overflow while unattached, publishes the newest events in order and counts the dropped", async () => {
    const { publisher, registry } = makePublisher({ backlogMax: 3 });
    const ids = [1, 2, 3, 4, 5].map((i) => `${node}-overflow-${i}-${Date.now()}`);
    ids.forEach((id, i) => publisher.publish(hostEvent(i + 1, id)));
    expect(publisher.dropped).toBe(2);
    publisher.attach(nc);
    expect(await publisher.flush(5000)).toBe(true);
    const stored = (await readStream(nc, node)).filter((m) => ids.includes(m.event.id)).map((m) => m.event.id);
    expect(stored).toEqual(ids.slice(2));
    expect(await metricValue(registry, "steward_node_agent_events_dropped_total")).toBe(2);
    publisher.close();
  });
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { startNatsCluster, waitFor, type NatsCluster } from "../src/index.js";

let cluster: NatsCluster;
let nc: NatsConnection;

beforeAll(async () => {
  cluster = await startNatsCluster(3);
  nc = await connect({ servers: cluster.url.split(","), maxReconnectAttempts: -1, reconnectTimeWait: 200 });
}, 120_000);

afterAll(async () => {
  await nc?.close();
  await cluster?.stop();
});

describe("startNatsCluster", () => {
  it("three servers, one meta leader among them, and a 3-replica stream survives one server killed and restarted", async () => {
    expect(cluster.servers).toHaveLength(3);
    expect(cluster.url.split(",")).toHaveLength(3);
    expect(cluster.servers.map((s) => s.name)).toContain(await cluster.metaLeader());

    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "T", subjects: ["t.>"], num_replicas: 3 });
    const js = jetstream(nc);
    await js.publish("t.1", "a");
    const leader = cluster.byName((await jsm.streams.info("T")).cluster!.leader!)!;
    await leader.kill();
    expect(leader.running).toBe(false);
    await waitFor("a publish acked by the two left", () => js.publish("t.2", "b").then(() => true), 60_000, 200);

    await leader.start();
    expect(leader.running).toBe(true);
    const info = await waitFor("every replica current again", async () => {
      const i = await jsm.streams.info("T");
      return i.cluster?.replicas?.length === 2 && i.cluster.replicas.every((r) => r.current) ? i : undefined;
    }, 60_000, 200);
    expect(info.state.messages).toBe(2);
  }, 180_000);
});

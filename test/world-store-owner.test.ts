/**
 * Under NATS identities only the observer may create the world store. A reader that starts first (the supervisor,
 * alerter or executor on a fresh compose deploy) waits for it instead of exiting: before, each of them crashed
 * once and was restarted by Docker.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectNats, openWorldBucket, type NatsConnection } from "@steward/platform/bus";
import { newNatsUserKey, planNatsUsers, renderNatsAuthorization, type NatsUser } from "@steward/platform/nats-auth";
import { NATS_COMPONENTS } from "@steward/contracts/nats-permissions";
import { worldNodeKey } from "@steward/contracts/subjects";
import { startNats, waitFor, type NatsServerHandle } from "@steward/testkit";

let nats: NatsServerHandle;
let users: NatsUser[] = [];
const conns: NatsConnection[] = [];
const as = async (name: string): Promise<NatsConnection> => {
  const nc = await connectNats(nats.url, `owner-test-${name}`, { maxReconnectAttempts: 0, reconnect: false, timeout: 5000 }, users.find((u) => u.name === name)!);
  conns.push(nc);
  return nc;
};

beforeAll(async () => {
  users = planNatsUsers(["node-a"], NATS_COMPONENTS, () => newNatsUserKey());
  nats = await startNats({ config: renderNatsAuthorization(users) });
}, 60_000);

afterAll(async () => {
  for (const nc of conns) await nc.close().catch(() => undefined);
  await nats?.stop();
});

describe("opening the world store as a reader", () => {
  it("gives up after its wait, naming the store and the refusal, when no observer creates it", async () => {
    const err = (await openWorldBucket(await as("cli"), 1, { waitForOwnerMs: 300 }).catch((e: Error) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/world store steward_world not there after 300 ms and this identity may not create it/);
  });

  it("waits while the observer has not created it, then opens it", async () => {
    let waiting: Error | undefined;
    const opening = openWorldBucket(await as("supervisor"), 1, { waitForOwnerMs: 60_000, onWaiting: (e) => (waiting = e) });
    let opened = false;
    void opening.then(() => (opened = true), () => undefined);
    await waitFor("the supervisor refused and waiting", () => waiting !== undefined, 30_000, 20);
    expect(waiting!.message).toMatch(/permission/i);
    expect(opened).toBe(false);
    const observer = await openWorldBucket(await as("observer"), 1, { waitForOwnerMs: 0 });
    await observer.put(worldNodeKey("node-a"), "1");
    const kv = await opening;
    expect((await kv.get(worldNodeKey("node-a")))?.string()).toBe("1");
  });
});

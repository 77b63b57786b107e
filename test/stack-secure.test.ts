/**
 * The end-to-end stack (test/support/stack.ts) runs NATS as a deployment does: a client without an identity, or
 * without TLS, is refused, and each service is connected as its own identity (the observer, not the harness, wrote
 * the agent's heartbeat into the world store).
 */
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectNats, openWorldBucket } from "@steward/platform/bus";
import { readWorld } from "@steward/world/world-store";
import { waitFor } from "@steward/testkit";
import { startStack, type Stack } from "./support/stack.js";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ dbPrefix: "steward_stack_secure", fleet: "version: 1\nnodes:\n  s1: {}\n", observer: true, agents: { s1: {} } });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

const refusal = (p: Promise<{ close(): Promise<void> }>): Promise<string> =>
  p.then(
    async (nc) => {
      await nc.close();
      return "connected";
    },
    (err: Error) => err.message,
  );

describe("the e2e stack's NATS", () => {
  it("refuses a client without credentials and one without TLS; the services connect as themselves", async () => {
    const once = { reconnect: false, maxReconnectAttempts: 0, timeout: 5_000 };
    // TLS with the right CA, but no identity.
    expect(await refusal(connectNats(stack.nats.url, "anonymous", { ...once, tls: { caFile: stack.natsSecurity!.caFile } }, null))).toMatch(/authorization/i);
    // No TLS at all: the server requires it before anything else.
    expect(await refusal(connect({ servers: stack.nats.url, ...once }))).not.toBe("connected");
    // The agent's heartbeat reached the world through the observer's own connection.
    const kv = await openWorldBucket(stack.nc);
    await waitFor("s1's heartbeat in the world store", async () => {
      const r = await readWorld(kv, 5_000, 500);
      return r.ok && Boolean((r.value.world.nodes["s1"] as { last_heartbeat?: string | null } | undefined)?.last_heartbeat);
    }, 30_000, 200);
    expect(stack.natsEnv("node.s1")["NATS_CA_FILE"]).toBe(stack.natsSecurity!.caFile);
    expect(() => stack.natsEnv("node.nobody")).toThrow(/no NATS identity node\.nobody/);
  });
});

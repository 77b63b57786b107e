/**
 * Property-based fuzzing of node commands and the event stream, against the real service processes (their `dist/main.js`, as an operator runs them) on
 * a real nats-server and PostgreSQL (set-up, inputs and checks: support/fuzz-kit.ts).
 *
 * What must hold for any input: no 5xx (a 503 only where the API says what is missing), every rejection a 4xx with a
 * code and a message (and the field, when a body field was wrong), a valid request sent at the same moment still
 * answered, no process exits, and every event published is either folded or dead-lettered by the observer.
 */
import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { EVENTS_STREAM, commandSubject, eventSubject } from "@steward/contracts/subjects";
import { NodeCommandReply } from "@steward/contracts/node-command";
import { jetstream, jetstreamManager } from "@steward/platform/bus";
import { waitFor } from "@steward/testkit";
import { RUNS, SEED, mutated, rawBody, expectAlive, stack, useFuzzStack, type FuzzStack } from "./support/fuzz-kit.js";

useFuzzStack({ apis: false });
let nc: FuzzStack["nc"], observerMetrics: FuzzStack["observerMetrics"];
beforeAll(() => ({ nc, observerMetrics } = stack));

describe("fuzzing node commands and the event stream (seed " + String(SEED) + ")", () => {
  it("node commands: anything sent to a node-agent gets a refusal naming why, and the agent stays up", async () => {
    // Well-formed but signed with a key the agent does not have: the mutations start from the closest thing to valid.
    const body = { id: randomUUID(), node: "n1", op: "restart", service: "web", action_id: null, issued_at: new Date().toISOString(), expires_at: new Date(Date.now() + 60_000).toISOString() };
    // An Ed25519 signature's shape (86 base64url characters), by no key the agent trusts.
    const signed = { body, sig: "ab".repeat(43) };
    const payloads = fc.oneof(mutated(signed), fc.constant(body).chain((b) => mutated(b).map((m) => `{"body":${m},"sig":"${"cd".repeat(43)}"}`)), rawBody.filter((b) => b.length < 900_000));
    await waitFor("the node-agent to answer commands", async () => {
      try {
        await nc.request(commandSubject("n1"), "{}", { timeout: 1000 });
        return true;
      } catch {
        return false;
      }
    }, 30_000, 100);
    await fc.assert(
      fc.asyncProperty(payloads, async (p) => {
        const reply = NodeCommandReply.parse((await nc.request(commandSubject("n1"), p, { timeout: 10_000 })).json());
        // Unsigned or forged: never executed, always refused with a code.
        expect(reply.ok, p.slice(0, 200)).toBe(false);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    expectAlive();
  }, 300_000);

  it("event stream: every message is folded or dead-lettered, none crashes the observer", async () => {
    const js = jetstream(nc);
    const validEvent = { id: "e", node: "n1", type: "heartbeat", ts: new Date().toISOString(), seq: 1, services: [] };
    const payloads = fc.oneof(mutated(validEvent), rawBody.filter((b) => b.length < 900_000));
    const types = fc.constantFrom("heartbeat", "service", "health_check", "host", "repo", "secret", "nope");
    let published = 0;
    await fc.assert(
      fc.asyncProperty(payloads, types, async (p, type) => {
        await js.publish(eventSubject("n1", type), p);
        published++;
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    const counted = async () => {
      const text = await (await fetch(`${observerMetrics}/metrics`)).text();
      let n = 0;
      for (const m of text.matchAll(/^steward_observer_events_(?:folded|dead_lettered)_total\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
      return n;
    };
    // The node-agent's own heartbeats share the stream: the invariant is over the whole stream, so every message in it
    // (the fuzzed ones among them) ends up counted exactly once, folded or dead-lettered.
    const jsm = await jetstreamManager(nc);
    await waitFor("every message in the stream folded or dead-lettered", async () => {
      const before = (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
      const n = await counted();
      const after = (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
      expect(n).toBeLessThanOrEqual(after);
      return before >= published && n >= before;
    }, 60_000, 100);
    expectAlive();
  }, 300_000);
});

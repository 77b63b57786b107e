/**
 * The deploy verdict against the race of issue 16, with a real nats-server, observer, executor and Postgres. The node
 * is played over the real wire protocol (signed command in, JetStream events and a reply out), so the order of what
 * it says can be fixed exactly:
 *
 * 1. the executor sends `deploy`;
 * 2. during the deploy a heartbeat restates the stack's old `stopped` state, with a new time, and the observer folds it;
 * 3. the observer then falls behind (stopped here, so the world stays frozen with that heartbeat in it);
 * 4. the node stores its report after the deploy (running, healthy, the new config) and replies ok with its events_seq.
 *
 * Judged by time, the frozen world "shows" the stack stopped after the command was sent, a final failure, and the
 * executor rolled back a deploy the node reported healthy. Judged by sequence it waits until the world holds the
 * node's report after the deploy, then passes the gate.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SignedNodeCommand, checkNodeCommand, type NodeCommandReply } from "@steward/contracts/node-command";
import { commandSubject, eventSubject } from "@steward/contracts/subjects";
import { readWorld } from "@steward/world/world-store";
import type { Snapshot } from "@steward/contracts/world-state";
import type { NodeEventInput } from "@steward/contracts/events";
import { jetstream, openWorldBucket, type KV } from "@steward/platform/bus";
import { createRegistry } from "@steward/platform/metrics";
import { silentLogger } from "@steward/platform/logger";
import { auditOf, seedAction } from "@steward/actions/testing";
import { createActionsRepository } from "@steward/actions/repository";
import { createObserver, loadConfig as loadObserverConfig, type Observer } from "@steward/observer";
import { metricValue, waitFor } from "@steward/testkit";
import { startStack, type Stack } from "./support/stack.js";

const NODE = "race1";
const STARTED = new Date().toISOString();
let stack: Stack;
let kv: KV;
let observer: Observer | undefined;

async function world(): Promise<Snapshot | undefined> {
  const r = await readWorld(kv);
  return r.ok ? r.value : undefined;
}

async function startObserver(): Promise<Observer> {
  const o = createObserver({
    config: loadObserverConfig({ NATS_URL: stack.nats.url, LOG_LEVEL: "silent", METRICS_PORT: "0", SNAPSHOT_PATH: join(stack.dir, "world.json"), SNAPSHOT_DEBOUNCE_MS: "20" }),
    nc: await stack.connectAs("observer"),
    logger: silentLogger(),
    registry: createRegistry("observer", false),
  });
  return o.start().then(() => o);
}

/** Stores one event as the node-agent would (JetStream, Nats-Msg-Id = event id); resolves with its stream sequence. */
async function store(e: NodeEventInput): Promise<number> {
  const ack = await jetstream(stack.nc).publish(eventSubject(NODE, e.type), JSON.stringify(e), { msgID: e.id });
  return ack.seq;
}

let n = 0;
const shop = (state: "running" | "stopped", hash: string) => ({
  service: "shop",
  state,
  health: state === "running" ? ("healthy" as const) : ("none" as const),
  config_hash: hash,
  desired_config_hash: "h2",
});
const heartbeat = (svc: ReturnType<typeof shop>): NodeEventInput => ({ type: "heartbeat", id: `${NODE}-hb-${++n}-${Date.now()}`, node: NODE, ts: new Date().toISOString(), interval_ms: 5000, started_at: STARTED, services: [svc] });

beforeAll(async () => {
  stack = await startStack({ dbPrefix: "steward_verdict_race", executor: { VERIFY_TIMEOUT_MS: "60000", VERIFY_POLL_MS: "50", POLL_MS: "100" } });
  kv = await openWorldBucket(stack.nc);
  observer = await startObserver();
  // Before the deploy: the stack is stopped, running config h1, the spec asks for h2.
  const seq = await store(heartbeat(shop("stopped", "h1")));
  await waitFor("the world to show the stopped stack", async () => ((await world())?.world.last_seq ?? 0) >= seq, 20_000);
}, 60_000);

afterAll(async () => {
  await observer?.stop().catch(() => undefined);
  await stack?.stop();
});

describe("deploy verdict", () => {
  it("a heartbeat restating the old state during the deploy is never the verdict: the gate waits for the node's report after the deploy", async () => {
    const ops: string[] = [];
    let reads = -1;
    let replied: (() => void) | undefined;
    const repliedP = new Promise<void>((r) => (replied = r));
    const seen = new Set<string>();
    const sub = stack.nc.subscribe(commandSubject(NODE), {
      callback: (_err, msg) => {
        void (async () => {
          const cmd = SignedNodeCommand.parse(msg.json());
          const check = checkNodeCommand(cmd, { node: NODE, keys: [stack.commandKeys.signing.publicKey], now: new Date(), seen: (id) => seen.has(id) });
          seen.add(cmd.body.id);
          ops.push(cmd.body.op);
          if (!check.ok) return msg.respond(JSON.stringify({ ok: false, id: cmd.body.id, code: check.code, message: check.message }));
          if (cmd.body.op !== "deploy") return msg.respond(JSON.stringify({ ok: true, id: cmd.body.id, node: NODE, service: "shop", pid: null, detail: `${cmd.body.op} done` }));
          // 2. During the deploy: a heartbeat restates the old `stopped` with a new time, and the world takes it.
          const stale = await store(heartbeat(shop("stopped", "h1")));
          await waitFor("the stale heartbeat folded", async () => ((await world())?.world.last_seq ?? 0) >= stale, 20_000);
          expect((await world())?.world.nodes[NODE]?.services["shop"]).toMatchObject({ state: "stopped" });
          // 3. The observer falls behind.
          await observer?.stop();
          observer = undefined;
          // 4. The node's report after the deploy is stored, and the reply says where.
          const after = await store({ type: "service", id: `${NODE}-svc-${Date.now()}`, node: NODE, ts: new Date().toISOString(), ...shop("running", "h2") });
          reads = await metricValue(stack.registries["executor"]!, "steward_executor_verify_reads_total", { kind: "deploy" });
          const reply: NodeCommandReply = { ok: true, id: cmd.body.id, node: NODE, service: "shop", pid: null, detail: "deployed h2 (app healthy)", events_seq: after };
          msg.respond(JSON.stringify(reply));
          replied?.();
        })();
      },
    });
    try {
      const id = await seedAction(stack.sql, { node: NODE, service: "shop", kind: "deploy", state: "approved", params: { health_timeout_ms: 30_000 }, notify: true });
      await repliedP;
      // The executor reads the frozen world (stale `stopped`, observed after the command was sent) again and again...
      const state = async () => (await createActionsRepository(stack.sql).get(id))?.action.state;
      await waitFor(
        "the executor to read the frozen world several times (or to end the gate)",
        async () => ops.length > 1 || (await state()) !== "running" || (await metricValue(stack.registries["executor"]!, "steward_executor_verify_reads_total", { kind: "deploy" })) >= reads + 5,
        20_000,
      );
      // ...and neither fails the gate nor rolls back.
      expect(ops).toEqual(["deploy"]);
      expect(await state()).toBe("running");

      // The observer catches up: the world now holds the node's report after the deploy, and the gate passes.
      observer = await startObserver();
      const done = await waitFor("the deploy to end", async () => {
        const a = (await createActionsRepository(stack.sql).get(id))?.action;
        return a && a.state !== "running" && a.state !== "approved" ? a : undefined;
      }, 30_000);
      expect(done.state).toBe("succeeded");
      expect(ops).toEqual(["deploy"]);
      const notes = (await auditOf(stack.sql, id)).map((a) => a.detail ?? "").join("\n");
      expect(notes).toMatch(/node race1: healthy \(deployed h2 \(app healthy\); world: race1\/shop is running and healthy with config h2\)/);
      expect(notes).not.toMatch(/health gate failed|rolling back/);
    } finally {
      sub.unsubscribe();
    }
  }, 120_000);
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkNodeCommand, SignedNodeCommand } from "@steward/contracts/node-command";
import { newCommandKeyPair } from "@steward/contracts/command-keys";
import { commandSubject } from "@steward/contracts/subjects";
import { connectNats, type NatsConnection } from "@steward/platform/bus";
import { createRegistry } from "@steward/platform/metrics";
import { startNats, type NatsServerHandle } from "@steward/testkit";
import { classifyReply, classifyRequestError, createNodeCommandClient, type CommandOutcome } from "../src/node-command-client.js";
import { commandStep, gateStep } from "../src/verdict.js";
import { createExecutorMetrics } from "../src/metrics.js";

const named = (name: string, message: string, extra: Record<string, unknown> = {}) => Object.assign(new Error(message), { name }, extra);
const ctx = { node: "n1", timeoutMs: 900 };

describe("classifyRequestError", () => {
  it.each<[string, unknown, string, RegExp]>([
    ["NATS v3: RequestError caused by NoResponders", named("RequestError", "no responders: 'steward.cmd.n1'", { cause: named("NoResponders", "no responders: 'steward.cmd.n1'") }), "no_responders", /^no node-agent is listening for commands on n1 \(no responders\)$/],
    ["a bare NoRespondersError", named("NoRespondersError", "503"), "no_responders", /on n1 \(no responders\)/],
    ["a 503 status code", Object.assign(new Error("request failed"), { code: "503" }), "no_responders", /no responders/],
    ["no responders deep in the cause chain", named("Error", "wrapped", { cause: named("Error", "again", { cause: named("Error", "No Responders available") }) }), "no_responders", /no responders/],
    ["a TimeoutError", named("TimeoutError", "timeout"), "timeout", /^the node-agent on n1 did not reply within 900 ms \(timeout\)$/],
    ["a timeout in the cause", named("RequestError", "request failed", { cause: named("TimeoutError", "timeout") }), "timeout", /did not reply within 900 ms/],
    ["a closed connection", named("ClosedConnectionError", "closed connection"), "send_failed", /^the command could not be sent: closed connection$/],
    ["something that is not an Error", "boom", "send_failed", /^the command could not be sent: boom$/],
    ["undefined", undefined, "send_failed", /^the command could not be sent: undefined$/],
  ])("%s → %s", (_name, err, failure, says) => {
    const r = classifyRequestError(err, ctx);
    expect(r.failure).toBe(failure);
    expect(r.message).toMatch(says);
  });

  it("a cause chain that loops ends", () => {
    const a = named("Error", "a") as Error & { cause?: unknown };
    a.cause = a;
    expect(classifyRequestError(a, ctx).failure).toBe("send_failed");
  });
});

describe("classifyReply", () => {
  it.each<[string, string, Partial<CommandOutcome> & { ok: boolean }, RegExp | null]>([
    ["ok with a pid", JSON.stringify({ ok: true, id: "c1", node: "n1", service: "web", pid: 42, detail: "started" }), { ok: true, pid: 42, detail: "started", eventsSeq: null }, null],
    ["ok without a pid", JSON.stringify({ ok: true, id: "c1", node: "n1", service: "web", pid: null, detail: "deployed" }), { ok: true, pid: null }, null],
    ["ok with the node's events_seq", JSON.stringify({ ok: true, id: "c1", node: "n1", service: "web", pid: null, detail: "deployed", events_seq: 1234 }), { ok: true, eventsSeq: 1234 }, null],
    ["a negative events_seq is off contract", JSON.stringify({ ok: true, id: "c1", node: "n1", service: "web", pid: null, detail: "deployed", events_seq: -1 }), { ok: false, failure: "invalid_reply" }, /invalid reply: events_seq: /],
    ["refused", JSON.stringify({ ok: false, id: "c1", code: "unknown_service", message: "no service 'ghost' here" }), { ok: false, failure: "refused", code: "unknown_service", nodeMessage: "no service 'ghost' here" }, /^the node-agent refused the command: unknown_service: no service 'ghost' here$/],
    ["failed (the node ran it)", JSON.stringify({ ok: false, id: "c1", code: "failed", message: "container app-1 is unhealthy" }), { ok: false, failure: "refused", code: "failed" }, /refused the command: failed: container app-1 is unhealthy/],
    ["not JSON", "stop please", { ok: false, failure: "invalid_reply" }, /^the node-agent sent an invalid reply: not JSON$/],
    ["off contract", JSON.stringify({ nonsense: true }), { ok: false, failure: "invalid_reply" }, /^the node-agent sent an invalid reply: ok: /],
    ["an unknown refusal code", JSON.stringify({ ok: false, id: null, code: "bored", message: "no" }), { ok: false, failure: "invalid_reply" }, /invalid reply: code: /],
    ["JSON null", "null", { ok: false, failure: "invalid_reply" }, /invalid reply/],
  ])("%s", (_name, raw, want, says) => {
    const r = classifyReply(raw);
    expect(r).toMatchObject(want);
    if (says) expect(!r.ok && r.message).toMatch(says);
  });
});

describe("commandStep and gateStep", () => {
  const ok = (pid: number | null): CommandOutcome => ({ ok: true, pid, detail: "done", eventsSeq: null });
  const refused = (code: "failed" | "expired"): CommandOutcome => ({ ok: false, failure: "refused", code, nodeMessage: "gate failed", message: `the node-agent refused the command: ${code}: gate failed` });
  const silent: CommandOutcome = { ok: false, failure: "no_responders", message: "no node-agent is listening for commands on n1 (no responders)" };
  it.each<[string, () => unknown, unknown]>([
    ["a single action that ran, with a pid", () => commandStep(ok(7), "restart", "web"), { ok: true, detail: "node-agent ran restart web (pid 7): done" }],
    ["a single action that ran, without a pid", () => commandStep(ok(null), "stop", "web"), { ok: true, detail: "node-agent ran stop web: done" }],
    ["a single action the node refused says so", () => commandStep(refused("failed"), "restart", "web"), { ok: false, detail: "the node-agent refused the command: failed: gate failed" }],
    ["a single action nobody heard", () => commandStep(silent, "restart", "web"), { ok: false, detail: silent.ok ? "" : silent.message }],
    ["a deploy that passed its gate", () => gateStep(ok(null)), { ok: true, detail: "done" }],
    ["a deploy that failed its gate: the node's words", () => gateStep(refused("failed")), { ok: false, detail: "gate failed" }],
    ["a deploy the node refused (expired): the refusal", () => gateStep(refused("expired")), { ok: false, detail: "the node-agent refused the command: expired: gate failed" }],
    ["a deploy nobody heard", () => gateStep(silent), { ok: false, detail: "no node-agent is listening for commands on n1 (no responders)" }],
  ])("%s", (_name, run, want) => {
    expect(run()).toEqual(want);
  });
});

describe("createNodeCommandClient against a real nats-server", () => {
  let nats: NatsServerHandle;
  let nc: NatsConnection;
  const signingKey = newCommandKeyPair().signing;
  const metrics = createExecutorMetrics(createRegistry("executor", false), { countByState: async () => ({}) } as never);
  const clock = () => new Date();

  beforeAll(async () => {
    nats = await startNats();
    nc = await connectNats(nats.url, "node-command-client-test");
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it("signs what it sends (the node-agent's own check passes), and classifies the reply", async () => {
    const seen: SignedNodeCommand[] = [];
    const sub = nc.subscribe(commandSubject("n-ok"), {
      callback: (_e, m) => {
        const cmd = SignedNodeCommand.parse(m.json());
        seen.push(cmd);
        const check = checkNodeCommand(cmd, { node: "n-ok", keys: [signingKey.publicKey], now: new Date(), seen: () => false });
        m.respond(JSON.stringify(check.ok ? { ok: true, id: cmd.body.id, node: "n-ok", service: cmd.body.service, pid: null, detail: `deployed with ${JSON.stringify(cmd.body.params)}` } : { ok: false, id: cmd.body.id, code: check.code, message: check.message }));
      },
    });
    try {
      const client = createNodeCommandClient({ nc, signingKey, commandTtlMs: 60_000, clock, metrics });
      const r = await client.send({ node: "n-ok", op: "deploy", service: "shop", actionId: "00000000-0000-0000-0000-000000000001", params: { health_timeout_ms: 1000 }, timeoutMs: 2000 });
      expect(r).toMatchObject({ ok: true, pid: null, detail: 'deployed with {"health_timeout_ms":1000}' });
      expect(seen[0]?.body).toMatchObject({ id: r.commandId, node: "n-ok", op: "deploy", service: "shop", action_id: "00000000-0000-0000-0000-000000000001" });

      const forged = await createNodeCommandClient({ nc, signingKey: newCommandKeyPair().signing, commandTtlMs: 60_000, clock, metrics }).send({ node: "n-ok", op: "restart", service: "shop", actionId: "a", timeoutMs: 2000 });
      expect(forged).toMatchObject({ ok: false, failure: "refused", code: "bad_signature" });
    } finally {
      sub.unsubscribe();
    }
  });

  it("no responders and a timeout, as NATS really reports them", async () => {
    const client = createNodeCommandClient({ nc, signingKey, commandTtlMs: 60_000, clock, metrics });
    expect(await client.send({ node: "n-absent", op: "restart", service: "web", actionId: "a", timeoutMs: 2000 })).toMatchObject({
      ok: false,
      failure: "no_responders",
      message: "no node-agent is listening for commands on n-absent (no responders)",
    });
    const sub = nc.subscribe(commandSubject("n-mute"), { callback: () => undefined });
    try {
      await nc.flush();
      expect(await client.send({ node: "n-mute", op: "restart", service: "web", actionId: "a", timeoutMs: 200 })).toMatchObject({
        ok: false,
        failure: "timeout",
        message: "the node-agent on n-mute did not reply within 200 ms (timeout)",
      });
    } finally {
      sub.unsubscribe();
    }
  });
});

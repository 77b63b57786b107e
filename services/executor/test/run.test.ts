import { overwriteAction } from "@steward/actions/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import { checkNodeCommand } from "@steward/contracts/node-command";
import { newCommandKeyPair } from "@steward/contracts/command-keys";
import { initTracing } from "@steward/platform/tracing";
import type { Action, AuditEntry } from "@steward/contracts/action";
import { metricValue as metricAt, waitFor, waitForTicks } from "@steward/testkit";
import { createActionsRepository as createActionStore, LOST_EXECUTOR_DETAIL } from "@steward/actions/repository";
import { api, COMMAND_KEYS, fakeAgent, insertAction, putWorld, service, setupEnv, snapshot, startExecutor, stateOf, type Env } from "./helpers.js";

let env: Env;
const spans = new InMemorySpanExporter();
const tracing = initTracing({ component: "executor-test", exporter: spans });

beforeAll(async () => {
  env = await setupEnv();
});
afterAll(async () => {
  await env?.close();
  await tracing.shutdown();
});

async function terminal(id: string, timeoutMs = 10_000): Promise<Action> {
  return waitFor(`action ${id} to finish`, async () => {
    const a = await createActionStore(env.sql).get(id);
    return a && ["succeeded", "failed", "failed_unknown", "expired", "rejected"].includes(a.action.state) ? a.action : undefined;
  }, timeoutMs, 25);
}

function metricValue(text: string, name: string, labels: string[]): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && labels.every((x) => l.includes(x)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

async function auditOf(id: string): Promise<AuditEntry[]> {
  return (await createActionStore(env.sql).get(id))?.audit ?? [];
}

describe("executing approved actions", () => {
  it("succeeds only once the world shows the service running and healthy after the command; audit has every step", async () => {
    const agent = fakeAgent(env, "node-ok");
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const id = await insertAction(env.sql, { node: "node-ok", service: "web", kind: "restart", traceparent });
    // A pre-command snapshot already says running+healthy: it must not count as verification.
    await putWorld(env.kv, snapshot({ "node-ok": [service("web", { since: "2020-01-01T00:00:00.000Z", updated_at: "2020-01-01T00:00:00.000Z" })] }));
    const { executor, url, registry } = await startExecutor(env, { EXECUTOR_ID: "exec-a" });
    try {
      const approved = await api(url, `/api/actions/${id}/approve`, { method: "POST", body: { actor: "alice", channel: "cli" } });
      expect(approved.status).toBe(200);
      const done = await terminal(id);
      expect(done.state).toBe("succeeded");
      expect(done.result).toMatch(/verified: service node-ok\/web is running and healthy/);

      expect(agent.received).toHaveLength(1);
      const got = agent.received[0]!;
      expect(got.cmd.body).toMatchObject({ node: "node-ok", service: "web", op: "restart", action_id: id });
      expect(Date.parse(got.cmd.body.expires_at) - Date.parse(got.cmd.body.issued_at)).toBe(30_000);
      expect(checkNodeCommand(got.cmd, { node: "node-ok", keys: [COMMAND_KEYS.signing.publicKey], now: new Date(), seen: () => false })).toEqual({ ok: true });
      expect(checkNodeCommand(got.cmd, { node: "node-ok", keys: [newCommandKeyPair().signing.publicKey], now: new Date(), seen: () => false })).toMatchObject({ ok: false, code: "bad_signature" });
      expect(checkNodeCommand(got.cmd, { node: "node-other", keys: [COMMAND_KEYS.signing.publicKey], now: new Date(), seen: () => false })).toMatchObject({ ok: false, code: "wrong_node" });

      const audit = await auditOf(id);
      expect(audit.map((a) => [a.from_state, a.to_state, a.actor, a.channel])).toEqual([
        ["pending", "approved", "admin", "cli"],
        ["approved", "running", "exec-a", "executor"],
        ["running", "succeeded", "exec-a", "executor"],
      ]);

      // The trace continues from the action's traceparent, and the command carries the command span's context.
      const run = spans.getFinishedSpans().find((s) => s.name === "executor.run" && s.attributes["steward.action_id"] === id);
      const cmd = spans.getFinishedSpans().find((s) => s.name === "executor.command" && s.spanContext().traceId === "0af7651916cd43dd8448eb211c80319c");
      expect(run?.spanContext().traceId).toBe("0af7651916cd43dd8448eb211c80319c");
      expect(run?.parentSpanContext?.spanId).toBe("b7ad6b7169203331");
      expect(cmd?.parentSpanContext?.spanId).toBe(run?.spanContext().spanId);
      expect(got.traceparent).toBe(`00-0af7651916cd43dd8448eb211c80319c-${cmd?.spanContext().spanId}-01`);

      const metrics = { body: await registry.metrics() };
      expect(metricValue(String(metrics.body), "steward_executor_actions_total", ['kind="restart"', 'result="succeeded"'])).toBe(1);
      expect(metricValue(String(metrics.body), "steward_executor_command_seconds_count", ['kind="restart"', 'outcome="ok"'])).toBe(1);
    } finally {
      agent.stop();
      await executor.stop();
    }
  });

  it("fails when the command succeeds but the world never shows the service healthy within VERIFY_TIMEOUT_MS", async () => {
    const agent = fakeAgent(env, "node-sick", { reportsBack: false });
    await putWorld(env.kv, snapshot({ "node-sick": [service("api", { since: "2020-01-01T00:00:00.000Z", updated_at: "2020-01-01T00:00:00.000Z" })] }));
    const id = await insertAction(env.sql, { node: "node-sick", service: "api", state: "approved" });
    const started = Date.now();
    const { executor } = await startExecutor(env, { VERIFY_TIMEOUT_MS: "500" });
    try {
      const done = await terminal(id);
      expect(Date.now() - started).toBeGreaterThanOrEqual(500);
      expect(done.state).toBe("failed");
      expect(done.result).toMatch(/command succeeded but the service was not verified within 500 ms; last seen: .*before the command was sent/);
      expect(agent.received).toHaveLength(1);
    } finally {
      agent.stop();
      await executor.stop();
    }
  });

  it("fails with the reason when the agent refuses, sends garbage, or nobody listens", async () => {
    const refusing = fakeAgent(env, "node-refuses", { reply: (c) => ({ ok: false, id: c.body.id, code: "unknown_service", message: `no service '${c.body.service}' here` }) });
    const garbage = fakeAgent(env, "node-garbage", { reply: () => ({ nonsense: true }) as never });
    const refused = await insertAction(env.sql, { node: "node-refuses", service: "ghost", state: "approved" });
    const invalid = await insertAction(env.sql, { node: "node-garbage", service: "web", state: "approved" });
    const nobody = await insertAction(env.sql, { node: "node-absent", service: "web", state: "approved" });
    const { executor, registry } = await startExecutor(env);
    try {
      expect(await terminal(refused)).toMatchObject({ state: "failed", result: "the node-agent refused the command: unknown_service: no service 'ghost' here" });
      expect((await terminal(invalid)).result).toMatch(/^the node-agent sent an invalid reply/);
      expect((await terminal(nobody)).result).toMatch(/no responders/);
      expect(metricValue(await registry.metrics(), "steward_executor_invalid_replies_total", [])).toBe(1);
    } finally {
      refusing.stop();
      garbage.stop();
      await executor.stop();
    }
  });

  it("two executors racing on 20 approved actions run each exactly once", async () => {
    const agent = fakeAgent(env, "node-race");
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await insertAction(env.sql, { node: "node-race", service: `svc-${i}`, state: "approved" }));
    const a = await startExecutor(env, { EXECUTOR_ID: "racer-a", EXECUTOR_CONCURRENCY: "4" });
    const b = await startExecutor(env, { EXECUTOR_ID: "racer-b", EXECUTOR_CONCURRENCY: "4" });
    try {
      for (const id of ids) expect((await terminal(id)).state).toBe("succeeded");
      const perAction = new Map<string, number>();
      for (const r of agent.received) perAction.set(r.cmd.body.action_id ?? "", (perAction.get(r.cmd.body.action_id ?? "") ?? 0) + 1);
      expect(agent.received).toHaveLength(20);
      expect([...perAction.keys()].sort()).toEqual([...ids].sort());
      expect([...perAction.values()].every((n) => n === 1)).toBe(true);
      const claims = [{ n: String((await Promise.all(ids.map((id) => auditOf(id)))).flat().filter((a) => a.to_state === "running").length) }];
      expect(Number(claims[0]?.n)).toBe(20);
    } finally {
      agent.stop();
      await Promise.all([a.executor.stop(), b.executor.stop()]);
    }
  });

  it("a running action whose executor died is reaped as failed_unknown and never re-run", async () => {
    const agent = fakeAgent(env, "node-crash");
    const id = await insertAction(env.sql, { node: "node-crash", service: "db", state: "approved" });
    // The dead executor: claims, then never sends, renews or finishes.
    const claimed = await createActionStore(env.sql).claimNext("dead-executor", 200);
    expect(claimed?.id).toBe(id);
    const { executor, registry } = await startExecutor(env, { EXECUTOR_ID: "survivor" });
    try {
      const done = await terminal(id);
      expect(done).toMatchObject({ state: "failed_unknown", result: LOST_EXECUTOR_DETAIL });
      // Two more claim polls: the survivor had its chance to pick the action up again.
      await waitForTicks("claim polls", () => metricAt(registry, "steward_executor_claim_polls_total"));
      expect(await stateOf(env.sql, id)).toBe("failed_unknown");
      expect(agent.received).toHaveLength(0);
      const audit = await auditOf(id);
      expect(audit.map((a) => [a.from_state, a.to_state, a.actor, a.channel, a.detail])).toEqual([
        ["approved", "running", "dead-executor", "executor", "claimed by dead-executor"],
        ["running", "failed_unknown", "system", "system", LOST_EXECUTOR_DETAIL],
      ]);
    } finally {
      agent.stop();
      await executor.stop();
    }
  });

  it("expires pending and approved actions past expires_at, and never runs them", async () => {
    const agent = fakeAgent(env, "node-late");
    const pending = await insertAction(env.sql, { node: "node-late", service: "a", expiresInMs: 300 });
    const approved = await insertAction(env.sql, { node: "node-late", service: "b", state: "approved", expiresInMs: -1 });
    const { executor } = await startExecutor(env);
    try {
      expect((await terminal(pending)).state).toBe("expired");
      expect((await terminal(approved)).state).toBe("expired");
      expect(agent.received).toHaveLength(0);
      const audit = await auditOf(pending);
      expect(audit.map((a) => [a.from_state, a.to_state, a.actor, a.channel])).toEqual([["pending", "expired", "system", "system"]]);
    } finally {
      agent.stop();
      await executor.stop();
    }
  });
});

describe("store edge cases", () => {
  it("finish only by the executor that claimed it, and lease renewal stops once reaped", async () => {
    const store = createActionStore(env.sql);
    const id = await insertAction(env.sql, { node: "node-store", service: "x", state: "approved" });
    expect((await store.claimNext("owner", 60_000))?.id).toBe(id);
    expect(await store.renewLease(id, "intruder", 60_000)).toBe(false);
    expect(await store.finish(id, "succeeded", "done", { executorId: "intruder" })).toEqual({ ok: false, code: "invalid_transition", state: "running" });
    expect(await store.renewLease(id, "owner", 60_000)).toBe(true);
    await overwriteAction(env.sql, id, { leaseExpired: true });
    expect((await store.reapLost()).map((r) => r.id)).toContain(id);
    expect(await store.renewLease(id, "owner", 60_000)).toBe(false);
    expect(await store.finish(id, "succeeded", "late", { executorId: "owner" })).toEqual({ ok: false, code: "invalid_transition", state: "failed_unknown" });
    expect(await store.finish("not-a-uuid", "failed", "x")).toEqual({ ok: false, code: "not_found" });
  });
});

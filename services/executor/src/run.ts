import { randomUUID } from "node:crypto";
import { assertSubjectToken, commandSubject } from "@steward/contracts/subjects";
import { contextFromTraceparent, withSpan, SpanStatusCode } from "@steward/platform/tracing";
import { NodeCommandReply, signNodeCommand, type NodeCommandBody } from "@steward/contracts/node-command";
import { traceHeaders, type KV, type NatsConnection } from "@steward/platform/bus";
import type { Action } from "@steward/contracts/action";
import type { Logger } from "@steward/platform/logger";
import type { ActionsRepository, MoveResult, RunOutcome } from "@steward/actions/repository";
import type { ExecutorMetrics } from "./metrics.js";
import { judgeWorld, type Verdict } from "./verify.js";
import { readSnapshot } from "./world.js";
import { runRollout } from "./rollout.js";

export interface RunDeps {
  nc: NatsConnection;
  kv: KV;
  store: ActionsRepository;
  logger: Logger;
  metrics: ExecutorMetrics;
  clock: () => Date;
  config: {
    executorId: string;
    fleetKey: string;
    leaseMs: number;
    commandTimeoutMs: number;
    commandTtlMs: number;
    verifyTimeoutMs: number;
    verifyPollMs: number;
    /** Deploy rollouts: the fleet spec for `deploy` settings, and the health gate when nothing else says. */
    fleetSpecPath?: string | undefined;
    deployHealthTimeoutMs?: number | undefined;
  };
}

type Ending = { outcome: RunOutcome; result: string } | { outcome: "abandoned"; result: string } | { outcome: "lost"; result: string };

/** What a failed request looked like, in operator words. */
export function describeRequestError(err: unknown): string {
  for (let e = err as { name?: string; message?: string; cause?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) {
    if (e.name === "NoRespondersError" || /no responders/i.test(e.message ?? "")) return "no node-agent is listening for commands on this node (no responders)";
    if (e.name === "TimeoutError" || /timeout/i.test(e.message ?? "")) return "the node-agent did not reply in time (timeout)";
  }
  return `the command could not be sent: ${(err as Error)?.message ?? String(err)}`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * Runs one action this executor has claimed (state `running`): sends the signed node command, then verifies
 * in the world snapshot that the service really is back. Always ends the action unless the lease was lost
 * (then the sweeper has already ended it as failed_unknown).
 */
export async function runAction(deps: RunDeps, action: Action, signal: AbortSignal): Promise<MoveResult | undefined> {
  const { store, config, logger } = deps;
  const log = logger.child({ action_id: action.id, node: action.node, service: action.service, kind: action.kind });
  return withSpan(
    "executor.run",
    { parent: contextFromTraceparent(action.traceparent), attributes: { "steward.action_id": action.id, "steward.node": action.node, "steward.service": action.service, "steward.kind": action.kind } },
    async (span) => {
      let leaseLost = false;
      const renew = setInterval(() => {
        store
          .renewLease(action.id, config.executorId, config.leaseMs)
          .then((ok) => {
            if (!ok && !leaseLost) {
              leaseLost = true;
              log.error("lease on a running action was lost; stopping work on it");
            }
          })
          .catch((err: Error) => log.warn({ err: err.message }, "lease renewal failed; will retry"));
      }, Math.max(50, Math.floor(config.leaseMs / 3)));
      let ending: Ending;
      try {
        ending = await execute(deps, action, signal, () => leaseLost);
      } catch (err) {
        ending = { outcome: "failed", result: `executor error: ${(err as Error).message}` };
      } finally {
        clearInterval(renew);
      }
      span.setAttribute("steward.outcome", ending.outcome);
      if (ending.outcome !== "succeeded") span.setStatus({ code: SpanStatusCode.ERROR, message: ending.result });
      if (ending.outcome === "lost") {
        log.error({ result: ending.result }, "action ended without this executor (lease lost)");
        return undefined;
      }
      const res =
        ending.outcome === "abandoned"
          ? await store.abandon(action.id, config.executorId, ending.result)
          : await store.finish(action.id, ending.outcome, ending.result, { executorId: config.executorId });
      if (res.ok) {
        deps.metrics.actionsTotal.inc({ kind: action.kind, result: res.action.state });
        (res.action.state === "succeeded" ? log.info.bind(log) : log.warn.bind(log))({ state: res.action.state, result: ending.result }, "action finished");
      } else {
        log.error({ code: res.code, result: ending.result }, "could not record the end of the action");
      }
      return res;
    },
  );
}

async function execute(deps: RunDeps, action: Action, signal: AbortSignal, leaseLost: () => boolean): Promise<Ending> {
  const { config, clock } = deps;
  try {
    assertSubjectToken(action.node);
  } catch {
    return { outcome: "failed", result: `node name '${action.node}' cannot be addressed (not a valid subject token); nothing was sent` };
  }
  let op: NodeCommandBody["op"];
  switch (action.kind) {
    case "start":
    case "stop":
    case "restart":
    case "pull":
      op = action.kind;
      break;
    case "deploy":
      // A rollout across nodes with health gates and rollback: its own module.
      return runRollout(deps, action, signal, leaseLost);
    default: {
      const never: never = action.kind;
      return { outcome: "failed", result: `unknown action kind '${String(never)}'` };
    }
  }
  const issued = clock();
  const body: NodeCommandBody = {
    id: randomUUID(),
    node: action.node,
    op,
    service: action.service,
    action_id: action.id,
    issued_at: issued.toISOString(),
    expires_at: new Date(issued.getTime() + config.commandTtlMs).toISOString(),
  };
  const signed = signNodeCommand(body, config.fleetKey);
  const sentAt = clock();
  const sent = await sendCommand(deps, action, JSON.stringify(signed));
  if (!sent.ok) return { outcome: "failed", result: sent.reason };
  if (leaseLost()) return { outcome: "lost", result: `command ${body.id} was sent but the lease was lost` };

  const deadline = Date.now() + config.verifyTimeoutMs;
  let last: Verdict = { ok: false, seen: "nothing read yet" };
  for (;;) {
    const snap = await readSnapshot(deps.kv).catch((err: Error) => ({ ok: false as const, code: "unreadable" as const, message: `world bucket read failed: ${err.message}` }));
    last = snap.ok ? judgeWorld(snap.value, action, sentAt) : { ok: false, seen: snap.message };
    if (last.ok) return { outcome: "succeeded", result: `${sent.detail}; verified: ${last.detail}` };
    if (leaseLost()) return { outcome: "lost", result: `lease lost while verifying; last seen: ${last.seen}` };
    if (signal.aborted) return { outcome: "abandoned", result: `executor stopped while verifying (command ${body.id} had succeeded); outcome unknown, not re-run, check the service; last seen: ${last.seen}` };
    if (Date.now() >= deadline) return { outcome: "failed", result: `command succeeded but the service was not verified within ${config.verifyTimeoutMs} ms; last seen: ${last.seen}` };
    await sleep(Math.min(config.verifyPollMs, Math.max(0, deadline - Date.now())), signal);
  }
}

async function sendCommand(deps: RunDeps, action: Action, payload: string): Promise<{ ok: true; detail: string } | { ok: false; reason: string }> {
  const { nc, config, metrics } = deps;
  return withSpan("executor.command", { attributes: { "steward.node": action.node, "steward.op": action.kind } }, async (span) => {
    const started = process.hrtime.bigint();
    const observe = (outcome: string) => metrics.commandSeconds.observe({ kind: action.kind, outcome }, Number(process.hrtime.bigint() - started) / 1e9);
    let raw: string;
    try {
      const msg = await nc.request(commandSubject(action.node), payload, { timeout: config.commandTimeoutMs, headers: traceHeaders() });
      raw = msg.string();
    } catch (err) {
      observe("error");
      const reason = describeRequestError(err);
      span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
      return { ok: false, reason };
    }
    let parsed: ReturnType<typeof NodeCommandReply.safeParse>;
    try {
      parsed = NodeCommandReply.safeParse(JSON.parse(raw));
    } catch {
      parsed = NodeCommandReply.safeParse(undefined);
    }
    if (!parsed.success) {
      observe("invalid_reply");
      metrics.invalidReplies.inc();
      const reason = `the node-agent sent an invalid reply: ${parsed.error.issues[0]?.message ?? "not JSON"}`;
      span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
      return { ok: false, reason };
    }
    const reply = parsed.data;
    if (!reply.ok) {
      observe("refused");
      const reason = `the node-agent refused the command: ${reply.code}: ${reply.message}`;
      span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
      return { ok: false, reason };
    }
    observe("ok");
    return { ok: true, detail: `node-agent ran ${action.kind} ${action.service}${reply.pid !== null ? ` (pid ${reply.pid})` : ""}: ${reply.detail}` };
  });
}

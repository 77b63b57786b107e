import { assertSubjectToken } from "@steward/contracts/subjects";
import { contextFromTraceparent, withSpan, SpanStatusCode } from "@steward/platform/tracing";
import type { NodeCommandOp } from "@steward/contracts/node-command";
import type { NatsConnection } from "@steward/platform/bus";
import type { Action } from "@steward/contracts/action";
import type { Logger } from "@steward/platform/logger";
import type { ActionsRepository, MoveResult } from "@steward/actions/repository";
import type { ExecutorMetrics } from "./metrics.js";
import type { NodeCommandClient } from "./node-command-client.js";
import { commandStep, type Ending, type Verdict } from "./verdict.js";
import { commandMark, judgeWorld } from "./verify.js";
import type { WorldView } from "./world.js";
import { runRollout } from "./rollout.js";
import { runDrill, type DrillDeps } from "./drill-run.js";
import { sleep } from "@steward/platform/sleep";

export interface RunDeps {
  nc: NatsConnection;
  world: Pick<WorldView, "nodes">;
  store: ActionsRepository;
  /** Signs, sends and classifies node commands (single actions and rollouts alike). */
  commands: NodeCommandClient;
  logger: Logger;
  metrics: ExecutorMetrics;
  clock: () => Date;
  /** Restart drills: where their results go, and their one-at-a-time lane. Without it a drill fails, touching nothing. */
  drill?: DrillDeps | undefined;
  config: {
    executorId: string;
    leaseMs: number;
    commandTimeoutMs: number;
    verifyTimeoutMs: number;
    verifyPollMs: number;
    /** A started service must stay running this long, by the node's reports and the executor's clock (0: no settle window; verify.ts `Settle`). */
    verifySettleMs?: number | undefined;
    /** Deploy rollouts: the fleet spec for `deploy` settings, and the health gate when nothing else says. */
    fleetSpecPath?: string | undefined;
    deployHealthTimeoutMs?: number | undefined;
  };
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
  let op: NodeCommandOp;
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
    case "drill":
      // Kills a healthy service on purpose and times its recovery: its own module.
      return deps.drill ? runDrill({ ...deps, ...deps.drill }, action, signal, leaseLost) : { outcome: "failed", result: "this executor runs no drills; nothing was sent" };
    default: {
      const never: never = action.kind;
      return { outcome: "failed", result: `unknown action kind '${String(never)}'` };
    }
  }
  const sentAt = clock();
  const command = await deps.commands.send({ node: action.node, op, service: action.service, actionId: action.id, timeoutMs: config.commandTimeoutMs });
  const sent = commandStep(command, action.kind, action.service);
  if (!sent.ok || !command.ok) return { outcome: "failed", result: sent.detail };
  const mark = commandMark(sentAt, command.eventsSeq);
  const settleMs = config.verifySettleMs ?? 0;
  const settleUntil = new Date(clock().getTime() + settleMs);
  if (leaseLost()) return { outcome: "lost", result: `command ${command.commandId} was sent but the lease was lost` };

  const deadline = Date.now() + config.verifyTimeoutMs;
  let last: Verdict = { ok: false, seen: "nothing read yet" };
  for (;;) {
    deps.metrics.verifyReads.inc({ kind: action.kind });
    // One node, from the executor's watched copy of the world store: no KV read per poll.
    const snap = deps.world.nodes([action.node]);
    last = snap.ok ? judgeWorld(snap.value, action, mark, settleMs ? { ms: settleMs, now: clock(), until: settleUntil } : undefined) : { ok: false, seen: snap.message };
    if (last.ok) return { outcome: "succeeded", result: `${sent.detail}; verified: ${last.detail}` };
    if (last.final) return { outcome: "failed", result: `${sent.detail}; but the world shows after the command: ${last.seen}` };
    if (leaseLost()) return { outcome: "lost", result: `lease lost while verifying; last seen: ${last.seen}` };
    if (signal.aborted) return { outcome: "abandoned", result: `executor stopped while verifying (command ${command.commandId} had succeeded); outcome unknown, not re-run, check the service; last seen: ${last.seen}` };
    if (Date.now() >= deadline) return { outcome: "failed", result: `command succeeded but the service was not verified within ${config.verifyTimeoutMs} ms; last seen: ${last.seen}` };
    await sleep(Math.min(config.verifyPollMs, Math.max(0, deadline - Date.now())), signal);
  }
}

import { DeployActionParams, DeployFailedAlert } from "@steward/contracts/deploy";
import { assertSubjectToken, DEPLOY_FAILED_ALERT_SUBJECT } from "@steward/contracts/subjects";
import { loadFleetSpec } from "@steward/fleet/fleet-spec";
import { traceHeaders, type NatsConnection } from "@steward/platform/bus";
import type { Action } from "@steward/contracts/action";
import type { Logger } from "@steward/platform/logger";
import type { ActionsRepository } from "@steward/actions/repository";
import type { ExecutorMetrics } from "./metrics.js";
import type { NodeCommandClient } from "./node-command-client.js";
import { gateStep, type Ending, type Step } from "./verdict.js";
import { commandMark, judgeDeployed, type DeployVerdict } from "./verify.js";
import type { WorldView } from "./world.js";

export type RolloutEnding = Ending;

/** What a rollout needs: the node-command client, the world, the audit trail, and NATS for the deploy_failed alert. */
export interface RolloutDeps {
  nc: NatsConnection;
  world: Pick<WorldView, "nodes">;
  store: Pick<ActionsRepository, "note">;
  commands: NodeCommandClient;
  logger: Logger;
  metrics?: Pick<ExecutorMetrics, "verifyReads">;
  clock: () => Date;
  config: {
    executorId: string;
    commandTimeoutMs: number;
    verifyTimeoutMs: number;
    verifyPollMs: number;
    fleetSpecPath?: string | undefined;
    deployHealthTimeoutMs?: number | undefined;
  };
}

export interface RolloutPlan {
  service: string;
  nodes: string[];
  maxParallel: number;
  healthTimeoutMs: number;
}

/** Default health gate when neither the action nor the fleet spec says (the fleet spec's own default). */
export const DEFAULT_HEALTH_TIMEOUT_MS = 120_000;

const short = (h: string | null | undefined): string => (!h ? "none" : h.startsWith("sha256:") ? h.slice(7, 19) : h.slice(0, 12));

/**
 * The rollout an action asks for: params first, then the fleet spec's `deploy` settings (the service's, then the
 * fleet's), then defaults. With a spec, every node must declare the service as a compose stack, so a typo in
 * `nodes` fails before anything is touched.
 */
export async function planRollout(action: Action, opts: { fleetSpecPath?: string | undefined; defaultHealthTimeoutMs?: number | undefined }): Promise<{ ok: true; plan: RolloutPlan; note?: string } | { ok: false; reason: string }> {
  const parsed = DeployActionParams.safeParse(action.params ?? {});
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    return { ok: false, reason: `invalid deploy params: ${i ? `${i.path.join(".") || "params"}: ${i.message}` : "invalid"}` };
  }
  const p = parsed.data;
  const nodes = p.nodes ?? [action.node];
  for (const n of nodes) {
    try {
      assertSubjectToken(n);
    } catch {
      return { ok: false, reason: `node name '${n}' cannot be addressed (not a valid subject token); nothing was sent` };
    }
  }
  let maxParallel = p.max_parallel;
  let healthTimeoutMs = p.health_timeout_ms;
  let note: string | undefined;
  if (opts.fleetSpecPath) {
    try {
      const spec = await loadFleetSpec(opts.fleetSpecPath);
      for (const n of nodes) {
        const s = spec.nodes[n]?.services[action.service];
        if (!s) return { ok: false, reason: `service '${action.service}' is not declared on node '${n}' in the fleet spec; nothing was sent` };
        if (s.kind !== "compose") return { ok: false, reason: `service '${action.service}' on node '${n}' is a ${s.kind} service; only compose stacks are deployed; nothing was sent` };
      }
      const first = spec.nodes[nodes[0] as string]?.services[action.service];
      const svcDeploy = first?.kind === "compose" ? first.deploy : undefined;
      maxParallel ??= svcDeploy?.max_parallel ?? spec.deploy.max_parallel;
      healthTimeoutMs ??= svcDeploy?.health_timeout ?? spec.deploy.health_timeout;
    } catch (err) {
      note = `fleet spec unreadable (${(err as Error).message.split("\n")[0]}); using defaults`;
    }
  }
  return {
    ok: true,
    plan: { service: action.service, nodes, maxParallel: maxParallel ?? 1, healthTimeoutMs: healthTimeoutMs ?? opts.defaultHealthTimeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS },
    ...(note ? { note } : {}),
  };
}

/**
 * A `deploy` action: rolls one stack out across its nodes, at most `maxParallel` at a time, in order. Each node's
 * health gate must pass within the deadline (the node waits for its containers and checks, then the world must
 * show it healthy). A failed gate stops the rollout: later nodes are not touched, the failed node is sent a
 * `rollback` to the revision it ran before, an alert is published, and the action fails naming the node.
 * Every step is an audit row.
 */
export async function runRollout(deps: RolloutDeps, action: Action, signal: AbortSignal, leaseLost: () => boolean): Promise<RolloutEnding> {
  const { config, logger } = deps;
  const log = logger.child({ action_id: action.id, service: action.service, kind: "deploy" });
  const planned = await planRollout(action, { fleetSpecPath: config.fleetSpecPath, defaultHealthTimeoutMs: config.deployHealthTimeoutMs });
  if (!planned.ok) return { outcome: "failed", result: planned.reason };
  const plan = planned.plan;
  const note = async (detail: string) => {
    log.info({ step: detail }, "rollout step");
    await deps.store.note(action.id, config.executorId, detail).catch((err: Error) => log.warn({ err: err.message }, "could not write a rollout audit row"));
  };

  const world = deps.world.nodes(plan.nodes);
  const before = new Map(plan.nodes.map((n) => [n, (world.ok ? world.value.world.nodes[n]?.services[plan.service]?.config_hash : undefined) ?? null]));
  await note(
    `rollout of ${plan.service} to ${plan.nodes.join(", ")}: at most ${plan.maxParallel} at a time, health gate ${plan.healthTimeoutMs} ms per node${planned.note ? `; ${planned.note}` : ""}`,
  );

  const deployed: string[] = [];
  for (let i = 0; i < plan.nodes.length; i += plan.maxParallel) {
    if (leaseLost()) return { outcome: "lost", result: `lease lost during the rollout; deployed so far: ${deployed.join(", ") || "none"}` };
    if (signal.aborted) {
      const rest = plan.nodes.slice(i);
      await note(`executor stopping: rollout halted before ${rest.join(", ")}`);
      return { outcome: "abandoned", result: `executor stopped mid-rollout; deployed: ${deployed.join(", ") || "none"}; not touched: ${rest.join(", ")}` };
    }
    const batch = plan.nodes.slice(i, i + plan.maxParallel);
    const results = await Promise.all(batch.map(async (n) => ({ node: n, step: await deployNode(deps, action, plan, n, before.get(n) ?? null, note, signal) })));
    for (const r of results) if (r.step.ok) deployed.push(r.node);
    const failed = results.filter((r) => !r.step.ok);
    if (failed.length === 0) continue;

    const untouched = plan.nodes.slice(i + plan.maxParallel);
    const stories: string[] = [];
    for (const f of failed) {
      const rb = await rollbackNode(deps, action, plan, f.node, before.get(f.node) ?? null, note);
      const story = `${f.node} failed its health gate: ${f.step.detail}; ${rb.ok ? rb.detail : `rollback failed: ${rb.detail}`}`;
      stories.push(story);
      await raiseAlert(deps, action, f.node, story, rb.ok, untouched);
    }
    const rest = untouched.length ? `not touched: ${untouched.join(", ")}` : "no nodes left untouched";
    await note(`rollout stopped at ${failed.map((f) => f.node).join(", ")}; ${rest}`);
    return {
      outcome: "failed",
      result: `deploy of ${plan.service} stopped at node ${failed.map((f) => f.node).join(", ")}: ${stories.join(" | ")}; deployed: ${deployed.join(", ") || "none"}; ${rest}`,
    };
  }
  await note(`rollout of ${plan.service} done: ${deployed.join(", ")} healthy`);
  return { outcome: "succeeded", result: `deployed ${plan.service} to ${deployed.join(", ")}; every health gate passed` };
}

async function deployNode(deps: RolloutDeps, action: Action, plan: RolloutPlan, node: string, previous: string | null, note: (d: string) => Promise<void>, signal: AbortSignal): Promise<Step> {
  await note(`node ${node}: deploying ${plan.service} (running config before: ${short(previous)})`);
  const sentAt = deps.clock();
  const outcome = await sendOutcome(deps, action, node, "deploy", { health_timeout_ms: plan.healthTimeoutMs, previous_config_hash: previous }, plan.healthTimeoutMs);
  const sent = gateStep(outcome);
  if (!sent.ok || !outcome.ok) {
    await note(`node ${node}: health gate failed: ${sent.detail}`);
    return sent;
  }
  // The node saw its containers healthy; the world (observer) must agree before the gate counts as passed, from
  // what the node reported after its deploy ended (by the reply's stream sequence), never from a heartbeat that
  // restated the old state while it was deploying.
  const mark = commandMark(sentAt, outcome.eventsSeq);
  const deadline = Date.now() + deps.config.verifyTimeoutMs;
  let last: DeployVerdict = { ok: false, final: false, seen: "nothing read yet" };
  for (;;) {
    deps.metrics?.verifyReads.inc({ kind: "deploy" });
    const snap = deps.world.nodes([node]);
    last = judgeDeployed(snap.ok ? snap.value : undefined, node, plan.service, mark);
    if (last.ok) {
      await note(`node ${node}: healthy (${sent.detail}; world: ${last.detail})`);
      return { ok: true, detail: last.detail };
    }
    if (last.final || Date.now() >= deadline || signal.aborted) {
      const detail = `the node reported ${sent.detail}, but ${last.final ? "the world shows" : `within ${deps.config.verifyTimeoutMs} ms the world did not confirm it; last seen`}: ${last.seen}`;
      await note(`node ${node}: health gate failed: ${detail}`);
      return { ok: false, detail };
    }
    await new Promise((r) => setTimeout(r, Math.min(deps.config.verifyPollMs, Math.max(0, deadline - Date.now()))));
  }
}

async function rollbackNode(deps: RolloutDeps, action: Action, plan: RolloutPlan, node: string, previous: string | null, note: (d: string) => Promise<void>): Promise<Step> {
  await note(`node ${node}: rolling back to ${previous ? `config ${short(previous)}` : "what ran before (nothing deployed by Steward)"}`);
  const r = await sendNodeCommand(deps, action, node, "rollback", { to_config_hash: previous, health_timeout_ms: plan.healthTimeoutMs }, plan.healthTimeoutMs);
  await note(r.ok ? `node ${node}: rolled back (${r.detail})` : `node ${node}: rollback failed: ${r.detail}`);
  return r.ok ? { ok: true, detail: `rolled back: ${r.detail}` } : r;
}

async function raiseAlert(deps: RolloutDeps, action: Action, node: string, detail: string, rolledBack: boolean, untouched: string[]): Promise<void> {
  const alert = DeployFailedAlert.parse({ action_id: action.id, node, service: action.service, detail: detail.slice(0, 4000), rolled_back: rolledBack, untouched, at: deps.clock().toISOString() });
  try {
    deps.nc.publish(DEPLOY_FAILED_ALERT_SUBJECT, JSON.stringify(alert), { headers: traceHeaders() });
    await deps.nc.flush();
  } catch (err) {
    deps.logger.error({ action_id: action.id, err: (err as Error).message }, "could not publish the deploy_failed alert");
  }
  deps.logger.error({ action_id: action.id, node, service: action.service, rolled_back: rolledBack, untouched }, "deploy failed its health gate; alert raised");
}

/** One signed command to a node-agent, waiting up to the health gate plus the usual command timeout for the reply. */
function sendOutcome(deps: RolloutDeps, action: Action, node: string, op: "deploy" | "rollback", params: Record<string, unknown>, gateMs: number) {
  return deps.commands.send({ node, op, service: action.service, actionId: action.id, params, timeoutMs: gateMs + deps.config.commandTimeoutMs });
}

async function sendNodeCommand(deps: RolloutDeps, action: Action, node: string, op: "deploy" | "rollback", params: Record<string, unknown>, gateMs: number): Promise<Step> {
  return gateStep(await sendOutcome(deps, action, node, op, params, gateMs));
}

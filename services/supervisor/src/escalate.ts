import { createHash } from "node:crypto";
import { Counter, type Registry } from "@steward/platform/metrics";
import { contextFromTraceparent, traceparentOf, withSpan } from "@steward/platform/tracing";
import type { Drift } from "@steward/contracts/drift";
import type { Logger } from "@steward/platform/logger";
import type { Snapshot } from "@steward/contracts/world-state";
import type { ActionsRepository } from "@steward/actions/repository";
import { RECOVERY_ACTION_KINDS, type Action } from "@steward/contracts/action";
import type { TaskEnvelope } from "@steward/contracts/task";
import { ApiBadResponse, ApiError, ApiUnreachable, createPlannerClient } from "@steward/planner/client";

/**
 * Escalation: drift that a plain restart does not explain becomes a planner task, with the evidence attached.
 * - restart_failed: the service fails again after a restart (or start) action for it succeeded;
 * - crash_loop: it went down several times within the window;
 * - repeated_health_failures: it turned unhealthy several times within the window;
 * - action_failed: an action failed (every failed action is an incident the planner looks at, once per action).
 */
export type EscalationSignal = "restart_failed" | "crash_loop" | "repeated_health_failures" | "action_failed";

export interface EscalationSettings {
  windowMs: number;
  crashLoopCount: number;
  healthFailCount: number;
}

export interface SucceededRestart {
  id: string;
  node: string;
  service: string;
  kind: string;
  updated_at: Date;
}

export interface Escalation {
  signal: EscalationSignal;
  node: string;
  service: string;
  /** The planner's idempotency key: stable for one incident, so the same drift is not re-sent every cycle. */
  key: string;
  message: string;
  /** The drift that triggered it; a failed action may have none (its trace context comes from the action). */
  drift?: Drift;
  traceparent?: string | null;
  evidence: Record<string, unknown>;
}

/** Remembers the distinct episodes (drift `since`) of down/unhealthy services and their start counts, within a window. */
export class DriftHistory {
  private readonly episodes = new Map<string, Map<string, number>>();
  private readonly starts = new Map<string, { at: number; starts: number }[]>();

  /** `nodes`: the nodes whose state changed (start counters are read only there); undefined: every node. */
  record(drifts: readonly Drift[], snapshot: Snapshot, now: Date, windowMs: number, nodes?: Iterable<string>): void {
    const t = now.getTime();
    for (const d of drifts) {
      if (d.kind !== "down" && d.kind !== "unhealthy") continue;
      const k = `${d.kind}:${d.node}/${d.service}`;
      const m = this.episodes.get(k) ?? new Map<string, number>();
      const since = d.since ?? now.toISOString();
      if (!m.has(since)) m.set(since, Date.parse(since) || t);
      this.episodes.set(k, m);
    }
    const touched: string[] = [];
    for (const node of nodes ?? Object.keys(snapshot.world.nodes)) {
      const n = snapshot.world.nodes[node];
      if (!n) continue;
      for (const s of Object.values(n.services)) {
        const k = `${node}/${s.name}`;
        const arr = this.starts.get(k) ?? [];
        if (arr.at(-1)?.starts !== s.starts) arr.push({ at: t, starts: s.starts });
        this.starts.set(k, arr);
        touched.push(k);
      }
    }
    // Forget what left the window, so memory stays bounded.
    for (const [k, m] of this.episodes) {
      for (const [since, at] of m) if (at < t - windowMs) m.delete(since);
      if (m.size === 0) this.episodes.delete(k);
    }
    // Start counters only move on nodes that changed: an incremental cycle trims those.
    for (const k of nodes ? touched : this.starts.keys()) {
      const arr = this.starts.get(k);
      if (!arr) continue;
      while (arr.length > 1 && (arr[1]?.at ?? t) < t - windowMs) arr.shift();
      if (arr.length > 50) arr.splice(0, arr.length - 50);
    }
  }

  /** Episode start times (ISO) of a drift kind on a service within the window. */
  episodesOf(kind: "down" | "unhealthy", node: string, service: string): string[] {
    return [...(this.episodes.get(`${kind}:${node}/${service}`)?.keys() ?? [])].sort();
  }

  /** How many times the agent started the service within the window, from its `starts` counter. */
  startsIn(node: string, service: string): number {
    const arr = this.starts.get(`${node}/${service}`) ?? [];
    const first = arr[0];
    const last = arr.at(-1);
    return first && last ? Math.max(0, last.starts - first.starts) : 0;
  }
}

const bucket = (now: Date, windowMs: number): number => Math.floor(now.getTime() / windowMs);

/** Pure: which current drifts need the planner. One escalation per service per cycle, the strongest signal first. */
export function detectEscalations(drifts: readonly Drift[], snapshot: Snapshot, restarts: readonly SucceededRestart[], history: DriftHistory, now: Date, s: EscalationSettings): Escalation[] {
  const out: Escalation[] = [];
  for (const d of drifts) {
    if (d.kind !== "down" && d.kind !== "unhealthy") continue;
    const svc = snapshot.world.nodes[d.node]?.services[d.service];
    const state = svc ? { state: svc.state, health: svc.health, exit_code: svc.exit_code ?? null, starts: svc.starts, since: svc.since, detail: svc.detail ?? null, checks: svc.checks } : null;
    const base = { node: d.node, service: d.service, drift: d };
    const sinceMs = d.since ? Date.parse(d.since) : now.getTime();
    const restart = restarts
      .filter((r) => r.node === d.node && r.service === d.service && r.updated_at.getTime() <= sinceMs && r.updated_at.getTime() >= now.getTime() - s.windowMs)
      .sort((a, b) => b.updated_at.getTime() - a.updated_at.getTime())[0];
    if (restart) {
      out.push({
        ...base,
        signal: "restart_failed",
        key: `supervisor:restart_failed:${restart.id}`,
        message: `${d.service} on ${d.node} is ${d.kind} again after the ${restart.kind} action ${restart.id} succeeded at ${restart.updated_at.toISOString()}: why does it keep failing?`,
        evidence: { signal: "restart_failed", drift: d, service_state: state, restart_action: { id: restart.id, kind: restart.kind, succeeded_at: restart.updated_at.toISOString() } },
      });
      continue;
    }
    const downs = history.episodesOf("down", d.node, d.service);
    const starts = history.startsIn(d.node, d.service);
    const crashes = Math.max(downs.length, d.kind === "down" ? starts : 0);
    if (d.kind === "down" && crashes >= s.crashLoopCount) {
      out.push({
        ...base,
        signal: "crash_loop",
        key: `supervisor:crash_loop:${d.node}/${d.service}:${bucket(now, s.windowMs)}`,
        message: `${d.service} on ${d.node} is crash-looping: down ${crashes} times within ${Math.round(s.windowMs / 60_000)} min. Why does it keep restarting?`,
        evidence: { signal: "crash_loop", drift: d, service_state: state, episodes: downs, starts_in_window: starts },
      });
      continue;
    }
    const unhealthy = history.episodesOf("unhealthy", d.node, d.service);
    if (d.kind === "unhealthy" && unhealthy.length >= s.healthFailCount) {
      out.push({
        ...base,
        signal: "repeated_health_failures",
        key: `supervisor:repeated_health_failures:${d.node}/${d.service}:${bucket(now, s.windowMs)}`,
        message: `${d.service} on ${d.node} failed its health checks ${unhealthy.length} times within ${Math.round(s.windowMs / 60_000)} min. Why?`,
        evidence: { signal: "repeated_health_failures", drift: d, service_state: state, episodes: unhealthy },
      });
    }
  }
  return out;
}

/** Pure: one escalation per failed action (its id is the key, so each is sent once), with the service as the world shows it. */
export function failedActionEscalations(failed: readonly Action[], snapshot: Snapshot): Escalation[] {
  return failed
    .filter((a) => a.state === "failed" || a.state === "failed_unknown")
    .map((a) => {
      const svc = snapshot.world.nodes[a.node]?.services[a.service];
      const state = svc ? { state: svc.state, health: svc.health, exit_code: svc.exit_code ?? null, starts: svc.starts, since: svc.since, detail: svc.detail ?? null } : null;
      const outcome = a.state === "failed_unknown" ? "may or may not have run (its outcome is unknown)" : "failed";
      return {
        signal: "action_failed" as const,
        node: a.node,
        service: a.service,
        key: `supervisor:action_failed:${a.id}`,
        message: `The ${a.kind} of ${a.service} on ${a.node} ${outcome}: ${a.result ?? "no result recorded"}. Why, and what should happen next?`,
        traceparent: a.traceparent,
        evidence: { signal: "action_failed", action: { id: a.id, kind: a.kind, state: a.state, reason: a.reason, result: a.result, params: a.params ?? {}, updated_at: a.updated_at }, service_state: state },
      };
    });
}

export interface EscalatorOptions extends EscalationSettings {
  plannerUrl: string;
  token: string;
  timeoutMs?: number;
  logger: Logger;
  registry?: Registry;
  fetch?: typeof fetch;
}

export interface Escalator {
  /** Records this cycle's drift and sends new escalations to the planner. Never throws. */
  observe(input: { actions: Pick<ActionsRepository, "listFinished">; drifts: readonly Drift[]; snapshot: Snapshot; now: Date; nodes?: Iterable<string> | undefined }): Promise<Escalation[]>;
}

export const taskIdFor = (key: string): string => `sup-${createHash("sha256").update(key).digest("hex").slice(0, 24)}`;

export function createEscalator(o: EscalatorOptions): Escalator {
  const history = new DriftHistory();
  const sent = new Set<string>();
  const planner = createPlannerClient({ url: o.plannerUrl, token: o.token, timeoutMs: o.timeoutMs ?? 3000, fetch: o.fetch });
  const counter = o.registry
    ? ((o.registry.getSingleMetric("steward_supervisor_escalations_total") as Counter<"signal" | "result"> | undefined) ??
      new Counter({ name: "steward_supervisor_escalations_total", help: "Drift escalated to the planner, by signal and result", labelNames: ["signal", "result"], registers: [o.registry] }))
    : undefined;

  async function send(e: Escalation): Promise<boolean> {
    return withSpan("supervisor.escalate", { parent: contextFromTraceparent(e.drift?.traceparent ?? e.traceparent ?? undefined), attributes: { "steward.node": e.node, "steward.service": e.service, "steward.escalation": e.signal } }, async (span) => {
      const traceparent = traceparentOf();
      const envelope: TaskEnvelope = {
        task_id: taskIdFor(e.key),
        content: e.message,
        source: "supervisor",
        user: "supervisor",
        // One conversation per service: the planner continues from its earlier diagnoses of the same service.
        conversation_id: `supervisor:${e.node}/${e.service}`,
        target_agent: "diagnostician",
        idempotency_key: e.key,
        restricted: false,
        evidence: e.evidence,
        ...(traceparent ? { traceparent } : {}),
      };
      try {
        await planner.submit(envelope, traceparent ? { headers: { traceparent } } : {});
        return true;
      } catch (err) {
        // Unreachable: the caller counts an error. An answer: the planner took it (2xx) or refused it.
        if (!(err instanceof ApiError) || err instanceof ApiUnreachable) throw err;
        span.setAttribute("http.response.status_code", err.status);
        return err instanceof ApiBadResponse && (err.status === 200 || err.status === 202);
      }
    });
  }

  return {
    async observe({ actions, drifts, snapshot, now, nodes }) {
      try {
        history.record(drifts, snapshot, now, o.windowMs, nodes);
        const since = new Date(now.getTime() - o.windowMs);
        const failed = await actions.listFinished({ since, states: ["failed", "failed_unknown"] });
        const found = failedActionEscalations(failed, snapshot).filter((e) => !sent.has(e.key));
        if (drifts.some((d) => d.kind === "down" || d.kind === "unhealthy")) {
          const succeeded = await actions.listFinished({ since, kinds: RECOVERY_ACTION_KINDS, states: ["succeeded"] });
          const restarts: SucceededRestart[] = succeeded.map((a) => ({ id: a.id, node: a.node, service: a.service, kind: a.kind, updated_at: new Date(a.updated_at) }));
          found.push(...detectEscalations(drifts, snapshot, restarts, history, now, o).filter((e) => !sent.has(e.key)));
        }
        const done: Escalation[] = [];
        for (const e of found) {
          try {
            if (await send(e)) {
              sent.add(e.key);
              done.push(e);
              counter?.inc({ signal: e.signal, result: "sent" });
              o.logger.info({ node: e.node, service: e.service, signal: e.signal, task: taskIdFor(e.key) }, "escalated drift to the planner");
            } else {
              counter?.inc({ signal: e.signal, result: "refused" });
              o.logger.warn({ node: e.node, service: e.service, signal: e.signal }, "planner refused the escalation; will retry next cycle");
            }
          } catch (err) {
            counter?.inc({ signal: e.signal, result: "error" });
            o.logger.warn({ node: e.node, service: e.service, signal: e.signal, err: (err as Error).message }, "planner unreachable; will retry next cycle");
          }
        }
        if (sent.size > 10_000) sent.clear(); // the planner's idempotency keys still de-duplicate
        return done;
      } catch (err) {
        o.logger.error({ err: (err as Error).message }, "escalation check failed");
        return [];
      }
    },
  };
}

import { performance } from "node:perf_hooks";
import { SpanKind } from "@opentelemetry/api";
import { context, contextFromTraceparent, trace, withSpan } from "@steward/platform/tracing";
import type { Logger } from "@steward/platform/logger";
import { isDatabaseUnreachable } from "@steward/platform/http";
import { createIdleWait } from "@steward/platform/sleep";
import { initialState, runConfig, type PlannerGraph, type RunContext } from "./graph.js";
import type { PlannerMetrics } from "./metrics.js";
import type { QueuedTask, TaskStore } from "./store.js";

export interface WorkerSettings {
  workerId: string;
  pollMs: number;
  leaseMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
}

/** Exponential backoff for attempt n (1-based), capped. */
export const backoffMs = (attempt: number, baseMs: number, maxMs: number): number => Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));

export interface WorkerDeps {
  settings: WorkerSettings;
  store: TaskStore;
  graph: PlannerGraph;
  runs: Map<string, RunContext>;
  metrics: PlannerMetrics;
  logger: Logger;
  clock: () => Date;
  /** Model time spent in this task so far, for the overhead histogram. */
  modelSeconds?: (taskId: string) => number;
  /** The investigation's step limit (bounds the graph's steps). */
  maxSteps?: number;
}

/**
 * A task's outcome must reach the database. While it is unreachable (a restart takes seconds) keep trying until our
 * lease ends, instead of losing the outcome and leaving the task leased to us for the rest of the lease.
 */
async function persist<T>(deps: WorkerDeps, task: QueuedTask, what: string, write: () => Promise<T>): Promise<T> {
  const until = Date.now() + deps.settings.leaseMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await write();
    } catch (err) {
      if (!isDatabaseUnreachable(err) || Date.now() >= until) throw err;
      if (attempt === 0) deps.logger.warn({ task: task.id, err: (err as Error).message }, `database unreachable: holding the task's ${what} until it is back`);
      await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
    }
  }
}

/** Runs one claimed task through the graph. Exported for tests that drive a single task. */
export async function runTask(deps: WorkerDeps, task: QueuedTask): Promise<void> {
  const { store, metrics, logger, settings } = deps;
  const parent = contextFromTraceparent(task.traceparent);
  const t0 = performance.now();
  await withSpan("planner.worker.run", { parent, kind: SpanKind.CONSUMER, attributes: { "steward.task_id": task.id, "steward.attempt": task.attempts, "steward.conversation_id": task.conversationId } }, async (span) => {
    const ctx = trace.setSpan(context.active(), span);
    deps.runs.set(task.id, { task, parent: ctx, spec: undefined });
    try {
      // Checkpoint once, when the graph ends: a task that dies mid-way is retried from its start by the queue,
      // so intermediate checkpoints buy nothing and cost a round of writes per step.
      const out = await deps.graph.invoke(initialState(task), { ...runConfig(task, deps.maxSteps), durability: "exit" });
      const ok = await persist(deps, task, "result", () => store.complete(task.id, settings.workerId, out.agent ?? null, out.answer ?? "", deps.clock()));
      if (ok) metrics.tasks.inc({ state: "succeeded" });
      else logger.warn({ task: task.id }, "task finished but was no longer ours (lease lapsed?)");
      span.setAttribute("steward.task.state", ok ? "succeeded" : "lost");
      const total = (performance.now() - t0) / 1000;
      metrics.taskSeconds.observe({ agent: out.agent ?? "none" }, total);
      metrics.overheadSeconds.observe(Math.max(0, total - (deps.modelSeconds?.(task.id) ?? 0)));
    } catch (err) {
      const message = (err as Error).message?.slice(0, 1000) ?? String(err);
      // A database that went away is not the task's fault: hand it back to the queue at once, no back-off.
      const delay = isDatabaseUnreachable(err) ? 0 : backoffMs(task.attempts, settings.backoffBaseMs, settings.backoffMaxMs);
      const r = await persist(deps, task, "failed attempt", () => store.failAttempt(task.id, settings.workerId, message, deps.clock(), delay));
      await store.addStep(task.id, "error", `attempt ${task.attempts} failed: ${message}${r.to === "queued" ? `; retrying at ${r.retryAt.toISOString()}` : r.to === "dead" ? "; no attempts left (dead-lettered)" : ""}`).catch(() => undefined);
      await store.flushSteps(task.id).catch(() => undefined);
      if (r.to === "dead") metrics.tasks.inc({ state: "dead" });
      span.setAttribute("steward.task.state", r.to);
      logger.warn({ task: task.id, attempt: task.attempts, outcome: r.to, err: message }, "task attempt failed");
    } finally {
      deps.runs.delete(task.id);
      deps.modelSeconds?.(task.id);
    }
  });
}

export interface Worker {
  start(): void;
  stop(): Promise<void>;
  /** Claims and runs one task if one is ready; true when it ran one. */
  tick(): Promise<boolean>;
  /** Wakes an idle worker now (a task was just queued). */
  nudge(): void;
}

export function createWorker(deps: WorkerDeps): Worker {
  let stopped = true;
  let loop: Promise<void> | undefined;
  const waiter = createIdleWait(() => stopped);

  async function tick(): Promise<boolean> {
    const task = await withSpan("planner.queue.claim", { kind: SpanKind.CONSUMER }, () => deps.store.claim(deps.settings.workerId, deps.clock(), deps.settings.leaseMs));
    if (!task) return false;
    await runTask(deps, task);
    return true;
  }

  async function run(): Promise<void> {
    while (!stopped) {
      let ran = false;
      waiter.clear();
      try {
        ran = await tick();
      } catch (err) {
        deps.logger.error({ err: (err as Error).message }, "worker cycle failed");
      }
      if (!ran) await waiter.idle(deps.settings.pollMs);
    }
  }

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      loop = run();
    },
    async stop() {
      stopped = true;
      waiter.wake();
      await loop;
    },
    tick,
    nudge: () => waiter.wake(),
  };
}

import type { ModelCall, Task, TaskDetail, TaskEnvelope, TaskProposal, TaskStep } from "@steward/contracts/task";
import type { Sql } from "@steward/platform/db";

/** A claimed task as the worker sees it. */
export interface QueuedTask {
  id: string;
  source: string;
  user: string;
  content: string;
  conversationId: string;
  targetAgent: string | null;
  restricted: boolean;
  evidence: Record<string, unknown> | null;
  traceparent: string | null;
  attempts: number;
  maxAttempts: number;
  expiresAt: Date | null;
}

interface TaskRow {
  id: string;
  state: Task["state"];
  source: Task["source"];
  user: string;
  content: string;
  conversation_id: string;
  target_agent: string | null;
  agent: string | null;
  restricted: boolean;
  evidence: Record<string, unknown> | null;
  traceparent: string | null;
  answer: string | null;
  error: string | null;
  attempts: number;
  max_attempts: number;
  created_at: Date;
  updated_at: Date;
  expires_at: Date | null;
  model_groups?: string[] | null;
  cost_usd?: string | null;
}

const iso = (d: Date | string): string => (d instanceof Date ? d.toISOString() : new Date(d).toISOString());

function toTask(r: TaskRow): Task {
  return {
    id: r.id,
    state: r.state,
    source: r.source,
    user: r.user,
    content: r.content,
    conversation_id: r.conversation_id,
    agent: r.agent,
    answer: r.answer,
    model_groups: r.model_groups ?? [],
    cost_usd: Number(r.cost_usd ?? 0),
    attempts: r.attempts,
    error: r.error,
    restricted: r.restricted,
    created_at: iso(r.created_at),
    updated_at: iso(r.updated_at),
    expires_at: r.expires_at ? iso(r.expires_at) : null,
  };
}

function toQueued(r: TaskRow): QueuedTask {
  return {
    id: r.id,
    source: r.source,
    user: r.user,
    content: r.content,
    conversationId: r.conversation_id,
    targetAgent: r.target_agent,
    restricted: r.restricted,
    evidence: r.evidence,
    traceparent: r.traceparent,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    expiresAt: r.expires_at,
  };
}

export interface EnqueueOptions {
  now: Date;
  defaultTtlS: number;
  maxAttempts: number;
  traceparent: string | null;
}

export interface DeadLetter {
  task_id: string;
  state: "failed" | "expired" | "dead";
  reason: string;
  detail: string | null;
  attempts: number;
}

export type FailOutcome = { to: "queued"; retryAt: Date } | { to: "dead" } | { to: "lost" };

export interface TaskStore {
  /** Inserts the task, or returns the existing one for a repeated idempotency key or task id. */
  enqueue(e: TaskEnvelope, opts: EnqueueOptions): Promise<{ task: Task; created: boolean }>;
  /**
   * Takes the oldest ready task with FOR UPDATE SKIP LOCKED, so several workers never take the same one.
   * A conversation's tasks run one at a time, oldest first; a running task whose lease lapsed is taken again.
   */
  claim(workerId: string, now: Date, leaseMs: number): Promise<QueuedTask | undefined>;
  complete(id: string, workerId: string, agent: string | null, answer: string, now: Date): Promise<boolean>;
  /** A failed attempt: back to the queue after a backoff, or dead (with a dead letter) once attempts run out. */
  failAttempt(id: string, workerId: string, error: string, now: Date, backoffMs: number): Promise<FailOutcome>;
  /** A failure retrying cannot fix: `failed`, with a dead letter. */
  failPermanently(id: string, workerId: string, reason: string, detail: string, now: Date): Promise<boolean>;
  /** Queued tasks past their TTL become `expired`; lapsed running tasks without attempts left become `dead`. Both dead-lettered. */
  sweep(now: Date): Promise<{ expired: string[]; dead: string[] }>;
  setAgent(id: string, agent: string): Promise<void>;
  /**
   * A task the API runs itself, at once (a post-mortem draft), recorded like any other so its steps, model calls and
   * cost show in `steward task show`: inserted `running` under `workerId` with one attempt, so no worker ever claims
   * it; `complete`/`failPermanently` end it, and the sweep dead-letters it should this process die first.
   */
  startDirect(t: { id: string; source: Task["source"]; user: string; content: string; conversationId: string; agent: string; restricted: boolean; traceparent: string | null }, workerId: string, now: Date, leaseMs: number): Promise<void>;
  /** Resolves at once; the insert follows in order and is flushed by `complete`/`failAttempt`/`flushSteps`. */
  addStep(id: string, kind: TaskStep["kind"], message: string): Promise<void>;
  /** Resolves once every step added so far for the task is written. */
  flushSteps(id: string): Promise<void>;
  addCall(id: string, call: Omit<ModelCall, "at">): Promise<void>;
  addProposal(id: string, p: TaskProposal): Promise<void>;
  get(id: string): Promise<TaskDetail | undefined>;
  list(opts: { limit: number; conversationId?: string | undefined }): Promise<Task[]>;
  deadLetter(id: string): Promise<DeadLetter | undefined>;
  queueDepth(): Promise<number>;
}

const TASK_AGGREGATES = (sql: Sql) => sql`
  (SELECT coalesce(array_agg(DISTINCT c.model_group ORDER BY c.model_group), '{}') FROM planner_model_calls c WHERE c.task_id = t.id) AS model_groups,
  (SELECT coalesce(sum(c.cost_usd), 0) FROM planner_model_calls c WHERE c.task_id = t.id) AS cost_usd`;

export function createTaskStore(sql: Sql): TaskStore {
  // Steps are progress notes: written behind the graph, in order per task, and flushed before the task's outcome is
  // recorded, so a finished task always shows all its steps while the graph never waits on a progress insert.
  const stepWrites = new Map<string, Promise<void>>();
  const flushSteps = (id: string): Promise<void> => stepWrites.get(id) ?? Promise.resolve();

  async function getTask(id: string): Promise<Task | undefined> {
    const [r] = await sql<TaskRow[]>`SELECT t.*, ${TASK_AGGREGATES(sql)} FROM planner_tasks t WHERE t.id = ${id}`;
    return r ? toTask(r) : undefined;
  }

  return {
    async enqueue(e, opts) {
      const ttl = e.ttl_s ?? opts.defaultTtlS;
      const expires = new Date(opts.now.getTime() + ttl * 1000);
      const rows = await sql<TaskRow[]>`
        INSERT INTO planner_tasks (id, state, source, "user", content, conversation_id, target_agent, restricted, idempotency_key,
                                   evidence, traceparent, max_attempts, next_attempt_at, created_at, updated_at, expires_at)
        VALUES (${e.task_id}, 'queued', ${e.source}, ${e.user}, ${e.content}, ${e.conversation_id ?? e.task_id}, ${e.target_agent ?? null},
                ${e.restricted}, ${e.idempotency_key ?? null}, ${e.evidence ? sql.json(e.evidence as never) : null}, ${opts.traceparent},
                ${opts.maxAttempts}, ${opts.now}, ${opts.now}, ${opts.now}, ${expires})
        ON CONFLICT DO NOTHING
        RETURNING *`;
      const created = rows[0];
      if (created) return { task: toTask(created), created: true };
      // A repeat: the idempotency key (or, without one, the task id) names the task that already exists.
      const [existing] = e.idempotency_key
        ? await sql<{ id: string }[]>`SELECT id FROM planner_tasks WHERE idempotency_key = ${e.idempotency_key}`
        : await sql<{ id: string }[]>`SELECT id FROM planner_tasks WHERE id = ${e.task_id}`;
      const found = existing ? await getTask(existing.id) : await getTask(e.task_id);
      if (!found) throw new Error(`task ${e.task_id} conflicted but cannot be read`);
      return { task: found, created: false };
    },

    async claim(workerId, now, leaseMs) {
      const lease = new Date(now.getTime() + leaseMs);
      const [r] = await sql<TaskRow[]>`
        UPDATE planner_tasks t
        SET state = 'running', attempts = t.attempts + 1, worker_id = ${workerId}, lease_until = ${lease}, updated_at = ${now}
        WHERE t.id = (
          SELECT c.id FROM planner_tasks c
          WHERE ((c.state = 'queued' AND c.next_attempt_at <= ${now})
                 OR (c.state = 'running' AND c.lease_until < ${now} AND c.attempts < c.max_attempts))
            AND (c.expires_at IS NULL OR c.expires_at > ${now})
            AND NOT EXISTS (
              SELECT 1 FROM planner_tasks e
              WHERE e.conversation_id = c.conversation_id AND e.seq < c.seq AND e.state IN ('queued', 'running'))
          ORDER BY c.seq
          LIMIT 1
          FOR UPDATE SKIP LOCKED)
        RETURNING t.*`;
      return r ? toQueued(r) : undefined;
    },

    async complete(id, workerId, agent, answer, now) {
      await flushSteps(id);
      const rows = await sql`
        UPDATE planner_tasks SET state = 'succeeded', agent = coalesce(${agent}, agent), answer = ${answer}, error = NULL,
               updated_at = ${now}, lease_until = NULL
        WHERE id = ${id} AND state = 'running' AND worker_id = ${workerId} RETURNING id`;
      return rows.length > 0;
    },

    async failAttempt(id, workerId, error, now, backoffMs) {
      await flushSteps(id);
      return sql.begin(async (tx) => {
        const [t] = await tx<{ attempts: number; max_attempts: number }[]>`
          SELECT attempts, max_attempts FROM planner_tasks WHERE id = ${id} AND state = 'running' AND worker_id = ${workerId} FOR UPDATE`;
        if (!t) return { to: "lost" as const };
        if (t.attempts >= t.max_attempts) {
          await tx`UPDATE planner_tasks SET state = 'dead', error = ${error}, updated_at = ${now}, lease_until = NULL WHERE id = ${id}`;
          await tx`
            INSERT INTO planner_dead_letters (task_id, state, reason, detail, attempts)
            VALUES (${id}, 'dead', 'attempts_exhausted', ${error}, ${t.attempts}) ON CONFLICT (task_id) DO NOTHING`;
          return { to: "dead" as const };
        }
        const retryAt = new Date(now.getTime() + backoffMs);
        await tx`
          UPDATE planner_tasks SET state = 'queued', error = ${error}, next_attempt_at = ${retryAt}, updated_at = ${now}, worker_id = NULL, lease_until = NULL
          WHERE id = ${id}`;
        return { to: "queued" as const, retryAt };
      });
    },

    async failPermanently(id, workerId, reason, detail, now) {
      return sql.begin(async (tx) => {
        const rows = await tx<{ attempts: number }[]>`
          UPDATE planner_tasks SET state = 'failed', error = ${`${reason}: ${detail}`}, updated_at = ${now}, lease_until = NULL
          WHERE id = ${id} AND state = 'running' AND worker_id = ${workerId} RETURNING attempts`;
        const row = rows[0];
        if (!row) return false;
        await tx`
          INSERT INTO planner_dead_letters (task_id, state, reason, detail, attempts)
          VALUES (${id}, 'failed', ${reason}, ${detail}, ${row.attempts}) ON CONFLICT (task_id) DO NOTHING`;
        return true;
      });
    },

    async sweep(now) {
      return sql.begin(async (tx) => {
        const expired = await tx<{ task_id: string }[]>`
          WITH x AS (
            UPDATE planner_tasks SET state = 'expired', error = 'TTL passed before the task could run', updated_at = ${now}, lease_until = NULL
            WHERE state IN ('queued', 'running') AND expires_at <= ${now} AND (state = 'queued' OR lease_until < ${now})
            RETURNING id, attempts, expires_at)
          INSERT INTO planner_dead_letters (task_id, state, reason, detail, attempts)
          SELECT id, 'expired', 'ttl_expired', 'expired at ' || to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), attempts FROM x
          ON CONFLICT (task_id) DO NOTHING
          RETURNING task_id`;
        const dead = await tx<{ task_id: string }[]>`
          WITH x AS (
            UPDATE planner_tasks SET state = 'dead', error = 'worker lost (lease lapsed) and no attempts left', updated_at = ${now}, lease_until = NULL
            WHERE state = 'running' AND lease_until < ${now} AND attempts >= max_attempts
            RETURNING id, attempts, worker_id)
          INSERT INTO planner_dead_letters (task_id, state, reason, detail, attempts)
          SELECT id, 'dead', 'lease_lost', 'last worker ' || coalesce(worker_id, '?'), attempts FROM x
          ON CONFLICT (task_id) DO NOTHING
          RETURNING task_id`;
        return { expired: expired.map((r) => r.task_id), dead: dead.map((r) => r.task_id) };
      });
    },

    async setAgent(id, agent) {
      await sql`UPDATE planner_tasks SET agent = ${agent} WHERE id = ${id}`;
    },

    async startDirect(t, workerId, now, leaseMs) {
      await sql`
        INSERT INTO planner_tasks (id, state, source, "user", content, conversation_id, target_agent, agent, restricted, traceparent,
                                   attempts, max_attempts, worker_id, lease_until, next_attempt_at, created_at, updated_at, expires_at)
        VALUES (${t.id}, 'running', ${t.source}, ${t.user}, ${t.content}, ${t.conversationId}, ${t.agent}, ${t.agent}, ${t.restricted}, ${t.traceparent},
                1, 1, ${workerId}, ${new Date(now.getTime() + leaseMs)}, ${now}, ${now}, ${now}, ${new Date(now.getTime() + leaseMs)})`;
    },

    flushSteps,

    addStep(id, kind, message) {
      const at = new Date(); // when it happened, not when it was written
      const write = (): Promise<void> =>
        sql`INSERT INTO planner_task_steps (task_id, kind, message, at) VALUES (${id}, ${kind}, ${message.slice(0, 4000)}, ${at})`.then(
          () => undefined,
          // A lost progress note must not fail the task; the task's own outcome is written (and fails) separately.
          () => undefined,
        );
      const next = flushSteps(id).then(write);
      stepWrites.set(id, next);
      void next.then(() => {
        if (stepWrites.get(id) === next) stepWrites.delete(id);
      });
      return Promise.resolve();
    },

    async addCall(id, c) {
      await sql`
        INSERT INTO planner_model_calls (task_id, agent, provider, model_group, model, decision, reason, input_tokens, output_tokens, cost_usd)
        VALUES (${id}, ${c.agent}, ${c.provider}, ${c.model_group}, ${c.model}, ${c.decision}, ${c.reason}, ${c.input_tokens}, ${c.output_tokens}, ${c.cost_usd})`;
    },

    async addProposal(id, p) {
      await sql`
        INSERT INTO planner_proposals (task_id, action_kind, node, service, accepted, reason, action_id)
        VALUES (${id}, ${p.action_kind}, ${p.node}, ${p.service}, ${p.accepted}, ${p.reason}, ${p.action_id})`;
    },

    async get(id) {
      const task = await getTask(id);
      if (!task) return undefined;
      const steps = await sql<{ at: Date; kind: TaskStep["kind"]; message: string }[]>`
        SELECT at, kind, message FROM planner_task_steps WHERE task_id = ${id} ORDER BY id`;
      const calls = await sql<(Omit<ModelCall, "at" | "cost_usd"> & { at: Date; cost_usd: string })[]>`
        SELECT at, agent, provider, model_group, model, decision, reason, input_tokens, output_tokens, cost_usd
        FROM planner_model_calls WHERE task_id = ${id} ORDER BY id`;
      const proposals = await sql<TaskProposal[]>`
        SELECT action_kind, node, service, accepted, reason, action_id::text AS action_id FROM planner_proposals WHERE task_id = ${id} ORDER BY id`;
      return {
        task,
        steps: steps.map((s) => ({ at: iso(s.at), kind: s.kind, message: s.message })),
        calls: calls.map((c) => ({ ...c, at: iso(c.at), cost_usd: Number(c.cost_usd) })),
        proposals: proposals.map((p) => ({ ...p })),
      };
    },

    async list({ limit, conversationId }) {
      const rows = await sql<TaskRow[]>`
        SELECT t.*, ${TASK_AGGREGATES(sql)} FROM planner_tasks t
        ${conversationId ? sql`WHERE t.conversation_id = ${conversationId}` : sql``}
        ORDER BY t.created_at DESC, t.seq DESC LIMIT ${limit}`;
      return rows.map(toTask);
    },

    async deadLetter(id) {
      const [r] = await sql<DeadLetter[]>`SELECT task_id, state, reason, detail, attempts FROM planner_dead_letters WHERE task_id = ${id}`;
      return r;
    },

    async queueDepth() {
      const [r] = await sql<{ n: string }[]>`SELECT count(*) AS n FROM planner_tasks WHERE state = 'queued'`;
      return Number(r?.n ?? 0);
    },
  };
}

import type { Incident, IncidentRecurrence, IncidentState, SimilarIncident } from "@steward/contracts/incident";
import { ADVISORY_LOCK_KEYS, type Sql } from "@steward/platform/db";
import { planAssignments, planRecurrence, type AssignmentPlan, type RecurrenceSettings, type UnlinkedTask } from "./plan.js";

/** The planner's incident tables (migration 009_incidents.sql): the only code that reads or writes them. */

interface IncidentRow {
  id: string;
  node: string;
  service: string;
  signature: string;
  state: IncidentState;
  title: string;
  started_at: Date;
  opened_at: Date;
  resolved_at: Date | null;
  outcome: string | null;
  diagnosis: string | null;
  postmortem: string | null;
  recovering_since: Date | null;
  tasks: string;
}

const iso = (d: Date): string => d.toISOString();

function toIncident(r: IncidentRow): Incident {
  return {
    id: Number(r.id),
    node: r.node,
    service: r.service,
    signature: r.signature,
    state: r.state,
    title: r.title,
    started_at: iso(r.started_at),
    opened_at: iso(r.opened_at),
    resolved_at: r.resolved_at ? iso(r.resolved_at) : null,
    outcome: r.outcome,
    diagnosis: r.diagnosis,
    tasks: Number(r.tasks),
    has_postmortem: r.postmortem !== null,
  };
}

interface RecurrenceRow {
  id: string;
  node: string;
  service: string;
  signature: string;
  incident_ids: string[];
  raised_at: Date;
  window_until: Date;
}

const toRecurrence = (r: RecurrenceRow): IncidentRecurrence => ({
  id: Number(r.id),
  node: r.node,
  service: r.service,
  signature: r.signature,
  count: r.incident_ids.length,
  incident_ids: r.incident_ids.map(Number),
  raised_at: iso(r.raised_at),
  window_until: iso(r.window_until),
});

export interface LinkedTask {
  id: string;
  state: string;
  content: string;
  created_at: Date;
  answer: string | null;
  evidence: Record<string, unknown> | null;
  traceparent: string | null;
  restricted: boolean;
}

export interface TaskStepRow {
  task_id: string;
  at: Date;
  kind: string;
  message: string;
}

export interface SimilarQuery {
  /** The service name (any node; the same node ranks first). Without it, only words are matched, over every incident. */
  service?: string | undefined;
  node?: string | undefined;
  signature?: string | undefined;
  /** Words to match against past titles, diagnoses and post-mortems (any of them; best-ranked first). */
  text?: string | undefined;
  excludeId?: number | undefined;
  limit?: number | undefined;
}

export interface IncidentStore {
  /**
   * Links new supervisor escalations to incidents (joining their service's open one or opening one), refreshes each
   * incident's diagnosis from its newest answered task, and raises a recurrence when a new incident makes one.
   * Under one advisory lock, so planners never open two incidents for one failure. Returns the incidents opened.
   */
  link(now: Date, recurrence: RecurrenceSettings): Promise<{ opened: number[]; recurrences: IncidentRecurrence[] }>;
  list(opts: { limit: number; state?: IncidentState | undefined }): Promise<Incident[]>;
  get(id: number): Promise<(Incident & { postmortem: string | null }) | undefined>;
  open(): Promise<(Incident & { recovering_since: Date | null })[]>;
  tasksOf(id: number): Promise<LinkedTask[]>;
  stepsOf(taskIds: readonly string[]): Promise<TaskStepRow[]>;
  /** Action ids the incident's tasks name: the failed action an escalation is about, the restart before it, and what its tasks proposed. */
  actionIdsOf(id: number): Promise<string[]>;
  resolve(id: number, at: Date, outcome: string): Promise<boolean>;
  /** Remembers when its service was first seen recovered (null: it failed again). */
  setRecovering(id: number, since: Date | null): Promise<void>;
  savePostmortem(id: number, markdown: string, now: Date): Promise<void>;
  similar(q: SimilarQuery): Promise<SimilarIncident[]>;
  /** Recurrences whose window has not ended. */
  activeRecurrences(now: Date): Promise<IncidentRecurrence[]>;
  /** The recurrence the incident counts toward or happened within (the newest), if any. */
  recurrenceOf(i: Pick<Incident, "id" | "node" | "service" | "signature" | "opened_at">): Promise<IncidentRecurrence | undefined>;
}

const INCIDENT_COLUMNS = (sql: Sql) => sql`i.id, i.node, i.service, i.signature, i.state, i.title, i.started_at, i.opened_at, i.resolved_at, i.outcome, i.diagnosis, i.postmortem, i.recovering_since,
  (SELECT count(*) FROM planner_incident_tasks l WHERE l.incident_id = i.id) AS tasks`;

/** Any of the text's words (stemmed by PostgreSQL), as one tsquery: `a | b | c`; null when it has none. */
const ANY_WORDS = (sql: Sql, text: string) => sql`(SELECT to_tsquery('english', string_agg(quote_literal(lexeme), ' | ')) FROM unnest(to_tsvector('english', ${text.slice(0, 4000)})))`;

export function createIncidentStore(sql: Sql): IncidentStore {
  const cols = INCIDENT_COLUMNS(sql);

  async function write(tx: Sql, plan: AssignmentPlan): Promise<number[]> {
    for (const j of plan.join) await tx`INSERT INTO planner_incident_tasks (task_id, incident_id) VALUES (${j.task_id}, ${j.incident_id}) ON CONFLICT (task_id) DO NOTHING`;
    const opened: number[] = [];
    for (const o of plan.open) {
      const [row] = await tx<{ id: string }[]>`
        INSERT INTO planner_incidents (node, service, signature, state, title, started_at, opened_at)
        VALUES (${o.node}, ${o.service}, ${o.signature}, 'open', ${o.title}, ${o.started_at}, ${o.opened_at}) RETURNING id`;
      const id = Number(row!.id);
      for (const t of o.task_ids) await tx`INSERT INTO planner_incident_tasks (task_id, incident_id) VALUES (${t}, ${id}) ON CONFLICT (task_id) DO NOTHING`;
      opened.push(id);
    }
    return opened;
  }

  return {
    async link(now, settings) {
      return sql.begin(async (txn) => {
        const tx = txn as unknown as Sql;
        await tx`SELECT pg_advisory_xact_lock(${ADVISORY_LOCK_KEYS.plannerIncidents})`;
        const tasks = await tx<{ id: string; created_at: Date; conversation_id: string; evidence: Record<string, unknown> | null }[]>`
          SELECT t.id, t.created_at, t.conversation_id, t.evidence FROM planner_tasks t
          WHERE t.source = 'supervisor' AND t.conversation_id LIKE 'supervisor:%'
            AND NOT EXISTS (SELECT 1 FROM planner_incident_tasks l WHERE l.task_id = t.id)
          ORDER BY t.seq LIMIT 500`;
        const openRows = await tx<{ id: string; node: string; service: string; started_at: Date }[]>`SELECT id, node, service, started_at FROM planner_incidents WHERE state = 'open'`;
        const plan = planAssignments(tasks as UnlinkedTask[], openRows.map((r) => ({ id: Number(r.id), node: r.node, service: r.service, started_at: r.started_at })));
        const opened = await write(tx, plan);
        // The newest answered task of each incident speaks for it (and makes it findable by its words).
        await tx`
          UPDATE planner_incidents i SET diagnosis = d.answer
          FROM (SELECT DISTINCT ON (l.incident_id) l.incident_id, left(t.answer, 8000) AS answer
                FROM planner_incident_tasks l JOIN planner_tasks t ON t.id = l.task_id
                WHERE t.state = 'succeeded' AND t.answer IS NOT NULL
                ORDER BY l.incident_id, t.seq DESC) d
          WHERE d.incident_id = i.id AND (i.state = 'open' OR i.resolved_at > ${new Date(now.getTime() - 86_400_000)}) AND i.diagnosis IS DISTINCT FROM d.answer`;
        const recurrences: IncidentRecurrence[] = [];
        for (const id of opened) {
          const [inc] = await tx<{ node: string; service: string; signature: string }[]>`SELECT node, service, signature FROM planner_incidents WHERE id = ${id}`;
          if (!inc) continue;
          const same = await tx<{ id: string; opened_at: Date }[]>`
            SELECT id, opened_at FROM planner_incidents
            WHERE node = ${inc.node} AND service = ${inc.service} AND signature = ${inc.signature} AND opened_at > ${new Date(now.getTime() - settings.windowMs)}`;
          const [active] = await tx<{ until: Date | null }[]>`
            SELECT max(window_until) AS until FROM planner_incident_recurrences WHERE node = ${inc.node} AND service = ${inc.service} AND signature = ${inc.signature}`;
          const r = planRecurrence(same.map((s) => ({ id: Number(s.id), opened_at: s.opened_at })), active?.until ?? undefined, now, settings);
          if (!r) continue;
          const [row] = await tx<RecurrenceRow[]>`
            INSERT INTO planner_incident_recurrences (node, service, signature, incident_ids, raised_at, window_until)
            VALUES (${inc.node}, ${inc.service}, ${inc.signature}, ${r.incident_ids}, ${now}, ${r.window_until}) RETURNING *`;
          if (row) recurrences.push(toRecurrence(row));
        }
        return { opened, recurrences };
      });
    },

    async list({ limit, state }) {
      const rows = await sql<IncidentRow[]>`SELECT ${cols} FROM planner_incidents i ${state ? sql`WHERE i.state = ${state}` : sql``} ORDER BY i.opened_at DESC, i.id DESC LIMIT ${limit}`;
      return rows.map(toIncident);
    },

    async get(id) {
      const [r] = await sql<IncidentRow[]>`SELECT ${cols} FROM planner_incidents i WHERE i.id = ${id}`;
      return r ? { ...toIncident(r), postmortem: r.postmortem } : undefined;
    },

    async open() {
      return (await sql<IncidentRow[]>`SELECT ${cols} FROM planner_incidents i WHERE i.state = 'open' ORDER BY i.id`).map((r) => ({ ...toIncident(r), recovering_since: r.recovering_since }));
    },

    async tasksOf(id) {
      return sql<LinkedTask[]>`
        SELECT t.id, t.state, t.content, t.created_at, t.answer, t.evidence, t.traceparent, t.restricted
        FROM planner_incident_tasks l JOIN planner_tasks t ON t.id = l.task_id WHERE l.incident_id = ${id} ORDER BY t.seq`;
    },

    async stepsOf(taskIds) {
      if (taskIds.length === 0) return [];
      return sql<TaskStepRow[]>`SELECT task_id, at, kind, message FROM planner_task_steps WHERE task_id IN ${sql(taskIds as string[])} ORDER BY id LIMIT 2000`;
    },

    async actionIdsOf(id) {
      const rows = await sql<{ id: string | null }[]>`
        SELECT t.evidence #>> '{action,id}' AS id FROM planner_incident_tasks l JOIN planner_tasks t ON t.id = l.task_id WHERE l.incident_id = ${id}
        UNION SELECT t.evidence #>> '{restart_action,id}' FROM planner_incident_tasks l JOIN planner_tasks t ON t.id = l.task_id WHERE l.incident_id = ${id}
        UNION SELECT p.action_id::text FROM planner_incident_tasks l JOIN planner_proposals p ON p.task_id = l.task_id WHERE l.incident_id = ${id}`;
      return rows.flatMap((r) => (r.id ? [r.id] : []));
    },

    async resolve(id, at, outcome) {
      const rows = await sql`UPDATE planner_incidents SET state = 'resolved', resolved_at = ${at}, outcome = ${outcome} WHERE id = ${id} AND state = 'open' RETURNING id`;
      return rows.length > 0;
    },

    async setRecovering(id, since) {
      await sql`UPDATE planner_incidents SET recovering_since = ${since} WHERE id = ${id} AND state = 'open' AND recovering_since IS DISTINCT FROM ${since}`;
    },

    async savePostmortem(id, markdown, now) {
      await sql`UPDATE planner_incidents SET postmortem = ${markdown.slice(0, 100_000)}, postmortem_at = ${now} WHERE id = ${id}`;
    },

    async similar(q) {
      const limit = q.limit ?? 5;
      const out = new Map<number, SimilarIncident>();
      const pick = (r: IncidentRow, match: SimilarIncident["match"]) => {
        const id = Number(r.id);
        if (out.has(id) || id === q.excludeId || out.size >= limit) return;
        out.set(id, { id, node: r.node, service: r.service, signature: r.signature, state: r.state, title: r.title, opened_at: iso(r.opened_at), resolved_at: r.resolved_at ? iso(r.resolved_at) : null, match, outcome: r.outcome, diagnosis: r.diagnosis });
      };
      if (q.service && q.signature) {
        const rows = await sql<IncidentRow[]>`
          SELECT ${cols} FROM planner_incidents i WHERE i.service = ${q.service} AND i.signature = ${q.signature} AND i.id <> ${q.excludeId ?? -1}
          ORDER BY (i.node = ${q.node ?? ""}) DESC, i.opened_at DESC LIMIT ${limit}`;
        for (const r of rows) pick(r, "signature");
      }
      const text = q.text?.trim();
      if (text && out.size < limit) {
        const rows = await sql<IncidentRow[]>`
          SELECT ${cols} FROM planner_incidents i, ${ANY_WORDS(sql, text)} AS q(query)
          WHERE q.query IS NOT NULL AND i.search @@ q.query AND i.id <> ${q.excludeId ?? -1}
            ${q.service ? sql`AND i.service = ${q.service}` : sql``}
          ORDER BY ts_rank(i.search, q.query) DESC, i.opened_at DESC LIMIT ${limit}`;
        for (const r of rows) pick(r, "text");
      }
      return [...out.values()];
    },

    async activeRecurrences(now) {
      return (await sql<RecurrenceRow[]>`SELECT * FROM planner_incident_recurrences WHERE window_until > ${now} ORDER BY id`).map(toRecurrence);
    },

    async recurrenceOf(i) {
      const [r] = await sql<RecurrenceRow[]>`
        SELECT * FROM planner_incident_recurrences
        WHERE node = ${i.node} AND service = ${i.service} AND signature = ${i.signature}
          AND (${i.id} = ANY(incident_ids) OR (raised_at <= ${new Date(i.opened_at)} AND window_until > ${new Date(i.opened_at)}))
        ORDER BY id DESC LIMIT 1`;
      return r ? toRecurrence(r) : undefined;
    },
  };
}

import { randomUUID } from "node:crypto";
import type { ActionQueries } from "@steward/actions/repository";
import type { NodeEvent } from "@steward/contracts/events";
import type { Incident, IncidentDetail, IncidentRecurrence, IncidentState, PostmortemReply, SimilarIncident } from "@steward/contracts/incident";
import type { FleetSpec } from "@steward/fleet/fleet-spec";
import type { Logger } from "@steward/platform/logger";
import type { Sql } from "@steward/platform/db";
import { context, contextFromTraceparent, traceparentOf, withSpan } from "@steward/platform/tracing";
import type { Evidence, EvidenceSources } from "../evidence.js";
import type { ModelCaller } from "../model-caller.js";
import type { PlannerMetrics } from "../metrics.js";
import { sensitivityOf } from "../sensitivity.js";
import type { TaskStore } from "../store.js";
import { createIncidentStore, type IncidentStore } from "./incident-store.js";
import { judgeResolution, type RecurrenceSettings } from "./plan.js";
import { draftFromTimeline, draftWithModel, parseProse, postmortemPrompt } from "./postmortem.js";
import { findSimilarIncidents, type PastIncidentsArgs } from "./similar.js";
import { buildTimeline } from "./timeline.js";

export interface IncidentSettings {
  /** A service must be running (and healthy) this long, with nothing about it open, before its incident ends. */
  quietMs: number;
  recurrence: RecurrenceSettings;
  /** How long a post-mortem draft may take before the sweep counts its task as lost. */
  leaseMs: number;
}

export interface IncidentsDeps {
  sql: Sql;
  tasks: Pick<TaskStore, "startDirect" | "complete" | "failPermanently" | "addStep">;
  actions: Pick<ActionQueries, "serviceHistory">;
  sources: Pick<EvidenceSources, "world" | "events" | "spec">;
  caller: Pick<ModelCaller, "call">;
  logger: Logger;
  clock: () => Date;
  settings: IncidentSettings;
  metrics?: Pick<PlannerMetrics, "incidents" | "postmortems">;
  /** Told of each recurrence raised (the alerter reads them from `GET /incidents/recurrences`). */
  onRecurrence?: (r: IncidentRecurrence) => void;
}

/** Incident memory: links escalations into incidents, ends them, answers the API, drafts post-mortems. */
export interface Incidents {
  readonly store: IncidentStore;
  /** Links new escalations (database only; runs before every read so reads are current). Serialised in this process. */
  link(): Promise<void>;
  /** Ends open incidents whose service recovered (reads the world); on the planner's timer. Returns the ids ended. */
  resolveRecovered(): Promise<number[]>;
  list(opts: { limit: number; state?: IncidentState | undefined }): Promise<Incident[]>;
  detail(id: number): Promise<IncidentDetail | undefined>;
  /** Drafts (and keeps) the post-mortem; undefined when there is no such incident. */
  postmortem(id: number, traceparent?: string | null): Promise<PostmortemReply | undefined>;
  recurrences(): Promise<IncidentRecurrence[]>;
  /** For the investigation loop's `past_incidents` tool. */
  similar(q: PastIncidentsArgs & { excludeId?: number }): Promise<SimilarIncident[]>;
}

const EVENTS_TIMEOUT_MS = 5000;
const EVENT_LEAD_MS = 60_000;

const timeout = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([p, new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`${what}: no answer within ${ms} ms`)), ms).unref())]);

const bare = (node: string, service: string): Evidence => ({ targets: [{ node, service }], drifts: [], services: {}, hosts: {}, events: {}, crashes: {}, spec: {}, logs: {}, attached: null, notes: [] });

export function createIncidents(deps: IncidentsDeps): Incidents {
  const store = createIncidentStore(deps.sql);
  const { logger, clock, settings } = deps;
  let linking: Promise<void> = Promise.resolve();

  function link(): Promise<void> {
    const next = linking.then(async () => {
      const r = await store.link(clock(), settings.recurrence);
      if (r.opened.length > 0) {
        deps.metrics?.incidents.inc({ event: "opened" }, r.opened.length);
        logger.info({ incidents: r.opened }, "incidents opened");
      }
      for (const rec of r.recurrences) {
        deps.metrics?.incidents.inc({ event: "recurrence" });
        logger.warn({ recurrence: rec.id, node: rec.node, service: rec.service, signature: rec.signature, incidents: rec.incident_ids }, "a failure keeps happening: recurrence raised");
        deps.onRecurrence?.(rec);
      }
    });
    linking = next.catch(() => undefined);
    return next;
  }

  async function resolveRecovered(): Promise<number[]> {
    await link();
    const open = await store.open();
    if (open.length === 0) return [];
    const nodes = [...new Set(open.map((i) => i.node))];
    const snapshot = await deps.sources.world(nodes);
    const now = clock();
    const ended: number[] = [];
    for (const inc of open) {
      const n = snapshot?.world.nodes[inc.node];
      const svc = n && n.status === "up" ? n.services[inc.service] : undefined;
      const tasks = await store.tasksOf(inc.id);
      const history = await deps.actions.serviceHistory({ node: inc.node, service: inc.service, since: new Date(inc.started_at), until: now, ids: await store.actionIdsOf(inc.id) });
      const succeeded = history.map((h) => h.action).filter((a) => a.state === "succeeded" && a.node === inc.node && a.service === inc.service).sort((a, b) => Date.parse(b.updated_at) - Date.parse(a.updated_at))[0];
      const verdict = judgeResolution(
        new Date(inc.opened_at),
        {
          service: svc ? { state: svc.state, health: svc.health, since: svc.since } : undefined,
          openActions: history.filter((h) => h.action.node === inc.node && h.action.service === inc.service && ["pending", "approved", "running"].includes(h.action.state)).length,
          openTasks: tasks.filter((t) => t.state === "queued" || t.state === "running").length,
          lastSucceeded: succeeded ? { id: succeeded.id, kind: succeeded.kind, updated_at: succeeded.updated_at } : undefined,
          recoveringSince: inc.recovering_since ?? undefined,
        },
        now,
        settings.quietMs,
      );
      if (verdict.kind === "recovering") await store.setRecovering(inc.id, verdict.since);
      else if (verdict.kind === "failing") await store.setRecovering(inc.id, null);
      else if (verdict.kind === "resolve" && (await store.resolve(inc.id, verdict.resolved_at, verdict.outcome))) {
        ended.push(inc.id);
        deps.metrics?.incidents.inc({ event: "resolved" });
        logger.info({ incident: inc.id, node: inc.node, service: inc.service, outcome: verdict.outcome }, "incident resolved");
      }
    }
    return ended;
  }

  async function gather(id: number): Promise<{ detail: IncidentDetail; restricted: boolean } | undefined> {
    await link();
    const inc = await store.get(id);
    if (!inc) return undefined;
    const now = clock();
    const tasks = await store.tasksOf(id);
    const [steps, history, similar, recurrence] = await Promise.all([
      store.stepsOf(tasks.map((t) => t.id)),
      deps.actions.serviceHistory({ node: inc.node, service: inc.service, since: new Date(inc.started_at), until: inc.resolved_at ? new Date(inc.resolved_at) : now, ids: await store.actionIdsOf(id) }),
      findSimilarIncidents(store, { service: inc.service, node: inc.node, signature: inc.signature, text: `${inc.title} ${inc.diagnosis ?? ""}`, excludeId: id }),
      store.recurrenceOf(inc),
    ]);
    const notes: string[] = [];
    let events: NodeEvent[] = [];
    try {
      events = await timeout(deps.sources.events(inc.node, Date.parse(inc.started_at) - EVENT_LEAD_MS, 500), EVENTS_TIMEOUT_MS, "the events stream");
      const until = inc.resolved_at ? Date.parse(inc.resolved_at) + EVENT_LEAD_MS : Infinity;
      events = events.filter((e) => Date.parse(e.ts) <= until);
    } catch (err) {
      notes.push(`events of ${inc.node} unreadable: ${(err as Error).message.slice(0, 200)}`);
    }
    const { postmortem, ...incident } = inc;
    const timeline = buildTimeline({ incident, tasks, steps, actions: history, events });
    return {
      restricted: tasks.some((t) => t.restricted),
      detail: {
        incident,
        tasks: tasks.map((t) => ({ id: t.id, state: t.state, content: t.content, created_at: t.created_at.toISOString(), answer: t.answer })),
        actions: history.map(({ action: a }) => ({ id: a.id, kind: a.kind, state: a.state, proposed_by: a.proposed_by, result: a.result, created_at: a.created_at, updated_at: a.updated_at })),
        timeline,
        notes,
        similar,
        recurrence: recurrence ?? null,
        postmortem,
      },
    };
  }

  async function postmortem(id: number, traceparent?: string | null): Promise<PostmortemReply | undefined> {
    const g = await gather(id);
    if (!g) return undefined;
    const { detail: d } = g;
    return withSpan("planner.incident.postmortem", { parent: contextFromTraceparent(traceparent), attributes: { "steward.incident_id": id } }, async () => {
      const now = clock();
      let spec: FleetSpec | undefined;
      try {
        spec = await deps.sources.spec();
      } catch {
        spec = undefined; // unknown: sensitivityOf answers sensitive
      }
      const sens = sensitivityOf(spec, bare(d.incident.node, d.incident.service));
      const taskId = `postmortem-${id}-${randomUUID().slice(0, 8)}`;
      const agent = "diagnostician";
      await deps.tasks.startDirect(
        { id: taskId, source: "api", user: "postmortem", content: `Draft the post-mortem of incident #${id}: ${d.incident.title}`, conversationId: `incident:${id}`, agent, restricted: g.restricted, traceparent: traceparentOf() ?? null },
        "postmortem",
        now,
        settings.leaseMs,
      );
      try {
        if (g.restricted) await deps.tasks.addStep(taskId, "triage", "local only: the incident holds restricted tasks");
        if (sens.sensitive) await deps.tasks.addStep(taskId, "triage", `local only: ${sens.why}`);
        const out = await deps.caller.call({ taskId, agent, source: "api", restricted: g.restricted, sensitive: sens.sensitive, parent: context.active() }, (max) => postmortemPrompt(d, now, max));
        let markdown: string;
        let reply: Pick<PostmortemReply, "by" | "detail">;
        if (out.served === "model") {
          const who = `${out.provider === "ollama" ? "the local model" : "Claude"} (${out.group}, ${out.answer.model})`;
          const prose = parseProse(out.answer.text, out.answer.json);
          if (prose.ok) {
            markdown = draftWithModel(d, now, prose.value, who);
            reply = { by: "model", detail: `written by ${who}` };
          } else {
            const why = `${who} answered unusable output: ${prose.reason}`;
            await deps.tasks.addStep(taskId, "error", why);
            markdown = draftFromTimeline(d, now, why);
            reply = { by: "timeline", detail: why };
          }
        } else {
          markdown = draftFromTimeline(d, now, out.why);
          reply = { by: "timeline", detail: out.why };
        }
        await store.savePostmortem(id, markdown, now);
        deps.metrics?.postmortems.inc({ by: reply.by });
        await deps.tasks.addStep(taskId, "report", reply.by === "model" ? `post-mortem ${reply.detail}` : `post-mortem drafted from the timeline: ${reply.detail}`);
        await deps.tasks.complete(taskId, "postmortem", agent, markdown, clock());
        return { incident_id: id, markdown, ...reply, task_id: taskId };
      } catch (err) {
        await deps.tasks.failPermanently(taskId, "postmortem", "postmortem_failed", (err as Error).message.slice(0, 500), clock()).catch(() => undefined);
        throw err;
      }
    });
  }

  return {
    store,
    link,
    resolveRecovered,
    async list(opts) {
      await link();
      return store.list(opts);
    },
    detail: async (id) => (await gather(id))?.detail,
    postmortem,
    async recurrences() {
      await link();
      return store.activeRecurrences(clock());
    },
    similar: (q) => findSimilarIncidents(store, q),
  };
}

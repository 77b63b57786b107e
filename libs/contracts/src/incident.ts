import { z } from "zod";

/**
 * Incident memory, served by the planner (`GET /incidents`, `GET /incidents/:id`, `POST /incidents/:id/postmortem`,
 * `GET /incidents/recurrences`) and read through its typed client. An incident is one failure of one service: the
 * supervisor's escalations about it (drift, failed actions) and the planner tasks they became, the actions taken, and
 * how it ended.
 */

export const IncidentState = z.enum(["open", "resolved"]);
export type IncidentState = z.infer<typeof IncidentState>;

/** Most incidents `GET /incidents` lists at once. */
export const MAX_INCIDENT_LIST_LIMIT = 500;

export const Incident = z.object({
  id: z.number().int(),
  node: z.string(),
  service: z.string(),
  /** The failure class, e.g. `down:exit=3` or `unhealthy:check=http`: with the service, what "the same failure" means. */
  signature: z.string(),
  state: IncidentState,
  title: z.string(),
  /** When the failure began (the drift's `since`), or when the incident was opened when that is unknown. */
  started_at: z.string(),
  opened_at: z.string(),
  resolved_at: z.string().nullable(),
  /** How it ended, e.g. "running and healthy again after restart 1a2b3c4d succeeded". */
  outcome: z.string().nullable(),
  /** The newest diagnosis of its tasks (a model's or the runbooks' words: unverified). */
  diagnosis: z.string().nullable(),
  tasks: z.number().int(),
  has_postmortem: z.boolean(),
});
export type Incident = z.infer<typeof Incident>;

export const IncidentListReply = z.object({ incidents: z.array(Incident) });
export type IncidentListReply = z.infer<typeof IncidentListReply>;

export const TimelineSource = z.enum(["drift", "task", "action", "event", "incident"]);
export type TimelineSource = z.infer<typeof TimelineSource>;

export const TimelineEntry = z.object({
  at: z.string(),
  source: TimelineSource,
  what: z.string(),
  /** The task id, action id or event id the entry comes from. */
  ref: z.string().nullable(),
  /** The W3C trace id this entry belongs to, when known: walk it in the tracing backend. */
  trace_id: z.string().nullable(),
});
export type TimelineEntry = z.infer<typeof TimelineEntry>;

export const IncidentTask = z.object({ id: z.string(), state: z.string(), content: z.string(), created_at: z.string(), answer: z.string().nullable() });
export type IncidentTask = z.infer<typeof IncidentTask>;

export const IncidentAction = z.object({ id: z.string(), kind: z.string(), state: z.string(), proposed_by: z.string(), result: z.string().nullable(), created_at: z.string(), updated_at: z.string() });
export type IncidentAction = z.infer<typeof IncidentAction>;

/** A past incident like this one: same service and failure signature, or close in words (full-text over diagnoses and post-mortems). */
export const SimilarIncident = z.object({
  // An incident's own fields, in the same order as before `match` was put among them (the JSON keys keep their order).
  ...Incident.pick({ id: true, node: true, service: true, signature: true, state: true, title: true, opened_at: true, resolved_at: true }).shape,
  /** `signature`: same service and failure signature; `text`: its diagnosis or post-mortem reads alike. */
  match: z.enum(["signature", "text"]),
  ...Incident.pick({ outcome: true, diagnosis: true }).shape,
});
export type SimilarIncident = z.infer<typeof SimilarIncident>;

/** The same signature on the same service, `count` times within the window: raised once per window as its own alert. */
export const IncidentRecurrence = z.object({
  id: z.number().int(),
  node: z.string(),
  service: z.string(),
  signature: z.string(),
  count: z.number().int(),
  incident_ids: z.array(z.number().int()),
  raised_at: z.string(),
  /** The recurrence window ends here; the same signature recurring after it is a new recurrence. */
  window_until: z.string(),
});
export type IncidentRecurrence = z.infer<typeof IncidentRecurrence>;

export const RecurrenceListReply = z.object({ recurrences: z.array(IncidentRecurrence) });
export type RecurrenceListReply = z.infer<typeof RecurrenceListReply>;

export const IncidentDetail = z.object({
  incident: Incident,
  tasks: z.array(IncidentTask),
  actions: z.array(IncidentAction),
  timeline: z.array(TimelineEntry),
  /** Why part of the timeline is missing (events unreadable, ...). */
  notes: z.array(z.string()),
  similar: z.array(SimilarIncident),
  recurrence: IncidentRecurrence.nullable(),
  postmortem: z.string().nullable(),
});
export type IncidentDetail = z.infer<typeof IncidentDetail>;

/** `POST /incidents/:id/postmortem`: the draft, who wrote it, and the planner task that records its model calls and cost. */
export const PostmortemReply = z.object({
  incident_id: z.number().int(),
  markdown: z.string(),
  /** `model`: a model wrote the prose around the recorded timeline; `timeline`: no model served, drafted from the records alone. */
  by: z.enum(["model", "timeline"]),
  /** Which model group served it, or why none did. */
  detail: z.string(),
  task_id: z.string(),
});
export type PostmortemReply = z.infer<typeof PostmortemReply>;

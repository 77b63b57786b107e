/** NATS names in one place, so every service and the docs agree. */
export const EVENTS_STREAM = "STEWARD_EVENTS";
export const EVENTS_SUBJECT_PREFIX = "steward.events";
export const eventSubject = (node: string, type: string): string => `${EVENTS_SUBJECT_PREFIX}.${node}.${type}`;
export const EVENTS_SUBJECTS = `${EVENTS_SUBJECT_PREFIX}.>`;
/** Every event one node published (a filter on the events stream). */
export const nodeEventsSubjects = (node: string): string => `${EVENTS_SUBJECT_PREFIX}.${node}.>`;

export const DLQ_STREAM = "STEWARD_DLQ";
export const DLQ_SUBJECT_PREFIX = "steward.dlq";
export const dlqSubject = (source: string): string => `${DLQ_SUBJECT_PREFIX}.${source}`;

export const OBSERVER_DURABLE = "observer";

/** KV bucket holding the latest world snapshot (key `world`) and the supervisor's drift report (key `drift`). */
export const WORLD_BUCKET = "steward_world";
export const WORLD_KEY = "world";
export const DRIFT_KEY = "drift";

/** Request/reply subject on which a node-agent takes signed commands. */
export const commandSubject = (node: string): string => `steward.cmd.${node}`;

/** Request/reply subject on which a node-agent answers with the tail of a declared service's log. */
export const logTailSubject = (node: string): string => `steward.logs.${node}`;

/** Core NATS subject on which the executor announces a rollout stopped by a failed health gate. */
export const DEPLOY_FAILED_ALERT_SUBJECT = "steward.alerts.deploy_failed";

/** Names must be valid single NATS tokens. */
export function assertSubjectToken(s: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(s)) throw new Error(`not a valid subject token: '${s}'`);
  return s;
}

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

/** Request/reply: the alerter answers with its firing and recently resolved alerts (`@steward/contracts/alerts`). */
export const ALERTS_RECENT_SUBJECT = "steward.alerts.recent";

/**
 * KV bucket holding the world store: one record per node plus a small header, for the world (written by the
 * observer) and for the supervisor's drift report. No value grows with the fleet: NATS refuses messages over 1 MiB.
 * Only `@steward/world` reads and writes these keys.
 */
export const WORLD_BUCKET = "steward_world";
/** Header of the world: last applied stream sequence, write revision, written_at, observer_id. Written after the nodes it covers. */
export const WORLD_HEADER_KEY = "world.header";
/** Prefix of the per-node world records (`world.node.<name>`). */
export const WORLD_NODE_PREFIX = "world.node.";
export const worldNodeKey = (node: string): string => `${WORLD_NODE_PREFIX}${assertSubjectToken(node)}`;
/** Watch filter covering the world header and every node record. */
export const WORLD_KEYS = "world.>";
/** Header of the drift report (computed_at, skipped, counts). Written after the per-node drift records. */
export const DRIFT_HEADER_KEY = "drift.header";
export const DRIFT_NODE_PREFIX = "drift.node.";
/**
 * Drift records are per node, and some findings are fleet-wide (node `*`): a name that is not a key token is
 * stored as `=` + its base64url (a token never contains `=`, so the two cannot collide).
 */
export const driftNodeKey = (node: string): string => `${DRIFT_NODE_PREFIX}${/^[A-Za-z0-9_-]+$/.test(node) ? node : `=${Buffer.from(node, "utf8").toString("base64url")}`}`;
/** The node name a drift record's key stands for (the inverse of `driftNodeKey` after the prefix). */
export const driftNodeFromKey = (token: string): string => (token.startsWith("=") ? Buffer.from(token.slice(1), "base64url").toString("utf8") : token);
export const DRIFT_KEYS = "drift.>";
/**
 * Where older versions kept the whole world and the whole drift report as one value each. Removed at start by
 * the new writers, so an old reader reports "missing" instead of reading a frozen world.
 */
export const LEGACY_WORLD_KEY = "world";
export const LEGACY_DRIFT_KEY = "drift";

/** Request/reply subject on which a node-agent takes signed commands. */
export const commandSubject = (node: string): string => `steward.cmd.${node}`;

/** Request/reply subject on which a node-agent answers with the tail of a declared service's log. */
export const logTailSubject = (node: string): string => `steward.logs.${node}`;

/** Request/reply subject on which a node-agent answers with the state of a compose service's containers (read-only). */
export const containerInspectSubject = (node: string): string => `steward.inspect.${node}`;

/** Core NATS subject on which the executor announces a rollout stopped by a failed health gate. */
export const DEPLOY_FAILED_ALERT_SUBJECT = "steward.alerts.deploy_failed";

/** What a node name may be: a single NATS subject token, which is also a valid KV key token. */
export const NODE_NAME_PATTERN = /^[A-Za-z0-9_-]{1,63}$/;

/** Names must be valid single NATS tokens. */
export function assertSubjectToken(s: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(s)) throw new Error(`not a valid subject token: '${s}'`);
  return s;
}

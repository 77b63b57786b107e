import {
  ALERTS_RECENT_SUBJECT,
  DEPLOY_FAILED_ALERT_SUBJECT,
  DLQ_STREAM,
  DRIFT_KEYS,
  EVENTS_STREAM,
  LEGACY_DRIFT_KEY,
  LEGACY_WORLD_KEY,
  OBSERVER_DURABLE,
  WORLD_BUCKET,
  WORLD_KEYS,
  commandSubject,
  dlqSubject,
  logTailSubject,
  containerInspectSubject,
  nodeEventsSubjects,
  assertSubjectToken,
} from "./subjects.js";

/**
 * Who may publish and subscribe to what on NATS, derived from the subjects in `./subjects.ts` (never restated).
 * Every node-agent and every control-plane component connects as its own NATS user; these are its permissions.
 * The nkeys and the server's `authorization` block are made from them by `@steward/platform/nats-auth`.
 */

/** The control-plane components that connect to NATS, each as its own user. `cli` is the CLI's direct world reads. */
export const NATS_COMPONENTS = ["observer", "supervisor", "executor", "planner", "alerter", "cli"] as const;
export type NatsComponent = (typeof NATS_COMPONENTS)[number];

export type NatsIdentity = { kind: "node"; node: string } | { kind: "component"; component: NatsComponent };

export interface NatsPermissions {
  publish: string[];
  subscribe: string[];
  /** May answer a request it received (publish once to its reply subject), whatever that subject is. */
  allowResponses: boolean;
}

/** A readable, unique name for an identity: `node.<name>` or `<component>` (node names are subject tokens). */
export const natsIdentityName = (id: NatsIdentity): string => (id.kind === "node" ? `node.${assertSubjectToken(id.node)}` : id.component);

/**
 * Each user's own inbox prefix, from its public nkey (a client knows it from its seed alone): replies, JetStream
 * acks and consumer deliveries come there, so nobody can subscribe to another identity's replies.
 */
export const natsInboxPrefix = (publicKey: string): string => `_INBOX.${assertSubjectToken(publicKey)}`;

const JS_API = "$JS.API";
const KV_STREAM = `KV_${WORLD_BUCKET}`;
const kvKeys = (keys: string): string => `$KV.${WORLD_BUCKET}.${keys}`;
const streamApi = (op: "INFO" | "CREATE" | "UPDATE", stream: string): string => `${JS_API}.STREAM.${op}.${stream}`;

/**
 * Reading the world store: the bucket's stream info (opening it), direct and stored message gets (`get`), and the
 * ordered consumers behind `watch` and `keys`, whose names the client picks at random (nats-server 2.9 cannot
 * scope consumer creation any narrower than the stream).
 */
const WORLD_READER = [
  `${JS_API}.INFO`,
  streamApi("INFO", KV_STREAM),
  `${JS_API}.DIRECT.GET.${KV_STREAM}`,
  `${JS_API}.DIRECT.GET.${KV_STREAM}.>`,
  `${JS_API}.STREAM.MSG.GET.${KV_STREAM}`,
  `${JS_API}.CONSUMER.CREATE.${KV_STREAM}`,
  `${JS_API}.CONSUMER.CREATE.${KV_STREAM}.>`,
  `${JS_API}.CONSUMER.INFO.${KV_STREAM}.*`,
  `${JS_API}.CONSUMER.DELETE.${KV_STREAM}.*`,
  `${JS_API}.CONSUMER.MSG.NEXT.${KV_STREAM}.*`,
  // A watch is an ordered push consumer: the client answers the server's flow-control messages.
  `$JS.FC.${KV_STREAM}.>`,
];

/** Everything each identity may publish and subscribe to. Pure; the table test in nats-permissions.test.ts pins it. */
export function natsPermissions(id: NatsIdentity, publicKey: string): NatsPermissions {
  const inbox = `${natsInboxPrefix(publicKey)}.>`;
  if (id.kind === "node") {
    // Its own events (JetStream publishes; the acks come to its inbox) and answers to the requests it takes.
    return { publish: [nodeEventsSubjects(assertSubjectToken(id.node))], subscribe: [commandSubject(id.node), logTailSubject(id.node), containerInspectSubject(id.node), inbox], allowResponses: true };
  }
  switch (id.component) {
    case "observer": {
      // Owns the streams (creates or updates them, never deletes), its durable consumer, the DLQ and the world keys.
      const durable = `${EVENTS_STREAM}.${OBSERVER_DURABLE}`;
      return {
        publish: [
          ...WORLD_READER,
          ...[EVENTS_STREAM, DLQ_STREAM, KV_STREAM].flatMap((s) => [streamApi("INFO", s), streamApi("CREATE", s), streamApi("UPDATE", s)]),
          `${JS_API}.CONSUMER.INFO.${durable}`,
          `${JS_API}.CONSUMER.DELETE.${durable}`,
          `${JS_API}.CONSUMER.CREATE.${durable}`,
          `${JS_API}.CONSUMER.CREATE.${durable}.>`,
          `${JS_API}.CONSUMER.DURABLE.CREATE.${durable}`,
          `${JS_API}.CONSUMER.MSG.NEXT.${durable}`,
          `$JS.ACK.${durable}.>`,
          dlqSubject("observer"),
          kvKeys(WORLD_KEYS),
          kvKeys(LEGACY_WORLD_KEY),
        ],
        subscribe: [inbox],
        allowResponses: false,
      };
    }
    case "supervisor":
      // Reads the world, writes the drift report.
      return { publish: [...WORLD_READER, kvKeys(DRIFT_KEYS), kvKeys(LEGACY_DRIFT_KEY)], subscribe: [inbox], allowResponses: false };
    case "executor":
      // The only publisher of node commands; asks the alerter for its alerts (console); announces failed rollouts.
      return { publish: [...WORLD_READER, commandSubject("*"), ALERTS_RECENT_SUBJECT, DEPLOY_FAILED_ALERT_SUBJECT], subscribe: [inbox], allowResponses: false };
    case "planner":
      // Read-only investigation: the world, a node's recent events (ordered consumers on the events stream, which
      // expire when idle: no delete, so it cannot remove the observer's durable), log tails, container inspects.
      return {
        publish: [
          ...WORLD_READER,
          streamApi("INFO", EVENTS_STREAM),
          `${JS_API}.CONSUMER.CREATE.${EVENTS_STREAM}`,
          `${JS_API}.CONSUMER.CREATE.${EVENTS_STREAM}.>`,
          `${JS_API}.CONSUMER.MSG.NEXT.${EVENTS_STREAM}.*`,
          `${JS_API}.CONSUMER.INFO.${EVENTS_STREAM}.*`,
          logTailSubject("*"),
          containerInspectSubject("*"),
        ],
        subscribe: [inbox],
        allowResponses: false,
      };
    case "alerter":
      // Reads the world and drift; answers the console's request for recent alerts; hears failed rollouts.
      return { publish: [...WORLD_READER], subscribe: [inbox, ALERTS_RECENT_SUBJECT, DEPLOY_FAILED_ALERT_SUBJECT], allowResponses: true };
    case "cli":
      return { publish: [...WORLD_READER], subscribe: [inbox], allowResponses: false };
  }
}

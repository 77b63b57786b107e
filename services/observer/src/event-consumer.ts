import { createHash } from "node:crypto";
import type { ConsumerMessages, JetStreamClient, JsMsg } from "@nats-io/jetstream";
import type { DeadLetter } from "@steward/contracts/events";
import { EVENTS_STREAM, OBSERVER_DURABLE, dlqSubject } from "@steward/contracts/subjects";
import { contextFromHeaders, traceHeaders } from "@steward/platform/bus";
import { tracer, type Context } from "@steward/platform/tracing";
import type { Logger } from "@steward/platform/logger";
import { decodeEventMessage } from "./event-decode.js";
import type { ObserverMetrics } from "./observer-metrics.js";
import { safeAck, type ObserverState } from "./observer-state.js";
import { advanceSeq, foldInto } from "./reduce.js";
import type { WorldPublisher } from "./world-publisher.js";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const CONSUMER_RETRY_MS = 1_000;

export interface EventConsumerDeps {
  state: ObserverState;
  js: JetStreamClient;
  logger: Logger;
  metrics: ObserverMetrics;
  clock: () => Date;
  publisher: WorldPublisher;
  /** Asked before rebuilding a consumer that failed: false when another observer may own it by now. */
  mayRecreate: () => Promise<boolean>;
  /** Rebuilds the durable consumer to start right after the world's last sequence. */
  recreate: () => Promise<void>;
}

/** The consume/fold loop: folds each event into the world, dead-letters what it cannot read, and has the publisher write the result. */
export interface EventConsumer {
  /** Starts consuming (the durable consumer must exist); runs until `state.stopping` and `stop()`. */
  start(): void;
  /** Closes the subscription and waits for the loop to end; set `state.stopping` first. */
  stop(): Promise<void>;
}

export function createEventConsumer(deps: EventConsumerDeps): EventConsumer {
  const { state, js, logger, metrics, clock, publisher } = deps;
  let messages: ConsumerMessages | undefined;
  let loop: Promise<void> | undefined;

  async function deadLetter(m: JsMsg, reason: DeadLetter["reason"], detail: string, ctx: Context): Promise<void> {
    metrics.deadLettered.inc({ reason });
    logger.warn({ seq: m.seq, subject: m.subject, reason, detail }, "event dead-lettered");
    const letter: DeadLetter = {
      reason,
      detail,
      subject: m.subject,
      stream_seq: m.seq,
      received_at: clock().toISOString(),
      payload_b64: Buffer.from(m.data).toString("base64"),
    };
    // Keyed by position and content, so re-processing after a crash does not dead-letter it twice.
    const msgID = `observer-${m.seq}-${createHash("sha256").update(m.data).digest("hex").slice(0, 16)}`;
    for (let attempt = 1; attempt <= 3; attempt++) {
      try {
        await js.publish(dlqSubject("observer"), JSON.stringify(letter), { msgID, headers: traceHeaders(ctx) });
        return;
      } catch (err) {
        if (attempt === 3) logger.error({ err: (err as Error).message, seq: m.seq }, "could not publish dead letter; the original stays in the events stream");
        else await sleep(200 * attempt);
      }
    }
  }

  /** Synchronous on the hot path (a valid event); returns a promise only when it must dead-letter. */
  function handle(m: JsMsg): Promise<void> | undefined {
    const seq = m.seq;
    if (seq <= state.world.last_seq) {
      // A redelivery of something already folded (e.g. acks lagged behind a restart).
      moveTo(m);
      safeAck(m, logger);
      return undefined;
    }
    // Each JsMsg getter decodes on every access: read the headers once.
    const headers = m.headers;
    const parent = contextFromHeaders(headers);
    const decoded = decodeEventMessage(m.subject, m.data);
    if (!decoded.ok) {
      return deadLetter(m, decoded.reason, decoded.detail, parent).then(() => {
        state.world = advanceSeq(state.world, seq);
        settle(m);
      });
    }
    const event = decoded.event;
    const incoming = headers?.get("traceparent") || undefined;
    const span = tracer().startSpan("observer.fold", { attributes: { "steward.node": event.node, "steward.event_type": event.type, "steward.event_id": event.id, "messaging.message.sequence": seq } }, parent);
    try {
      // The world keeps the traceparent the event arrived with: it is part of the stream, so a replay
      // reproduces the world exactly, and the supervisor continues the probe's trace from it.
      foldInto(state.world, event, { seq, traceparent: incoming });
      metrics.folded.inc({ type: event.type });
      metrics.foldLagSeconds.observe(Math.max(0, (clock().getTime() - Math.floor(m.info.timestampNanos / 1_000_000)) / 1000));
    } catch (err) {
      // The reducer is total; if it ever throws, skip the event rather than stall the stream on it.
      span.recordException(err as Error);
      logger.error({ err: (err as Error).message, seq }, "fold failed; event skipped");
      state.world = advanceSeq(state.world, seq);
    } finally {
      span.end();
    }
    settle(m);
    return undefined;
  }

  /** The stale check's place in the stream: this message's time and what was still behind it. */
  function moveTo(m: JsMsg): void {
    const info = m.info;
    state.position = { streamTimeMs: Math.floor(info.timestampNanos / 1_000_000), pending: info.pending, processedAtMs: clock().getTime() };
  }

  function settle(m: JsMsg): void {
    moveTo(m);
    state.unacked = m;
    state.positions.record(state.world);
    metrics.lastSeq.set(state.world.last_seq);
    publisher.schedule();
  }

  async function run(): Promise<void> {
    while (!state.stopping) {
      try {
        const consumer = await js.consumers.get(EVENTS_STREAM, OBSERVER_DURABLE);
        messages = await consumer.consume({ max_messages: 512, abort_on_missing_resource: true });
        for await (const m of messages) {
          if (state.stopping) break;
          const pending = handle(m);
          if (pending) await pending;
        }
      } catch (err) {
        if (!state.stopping) logger.error({ err: (err as Error).message }, "consuming events failed; recreating the consumer");
      }
      if (state.stopping) break;
      await sleep(CONSUMER_RETRY_MS);
      // A consumer that vanished may have been recreated by an observer that took over: never take it back unless we hold the lock.
      if (state.stopping || !(await deps.mayRecreate())) break;
      await deps.recreate().catch((err: Error) => logger.error({ err: err.message }, "recreating the consumer failed"));
    }
  }

  return {
    start() {
      loop = run();
    },
    async stop() {
      await messages?.close().catch(() => undefined);
      await loop;
      loop = undefined;
      messages = undefined;
    },
  };
}

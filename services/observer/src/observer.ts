import { createHash } from "node:crypto";
import { performance } from "node:perf_hooks";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { AckPolicy, DeliverPolicy, JetStreamApiError, type ConsumerMessages, type JsMsg } from "@nats-io/jetstream";
import { type DeadLetter, NodeEvent } from "@steward/contracts/events";
import { EVENTS_STREAM, EVENTS_SUBJECT_PREFIX, OBSERVER_DURABLE, dlqSubject } from "@steward/contracts/subjects";
import { contextFromHeaders, ensureStreams, jetstream, jetstreamManager, openWorldBucket, traceHeaders, type KV, type NatsConnection } from "@steward/platform/bus";
import { emptyWorld, type WorldState } from "@steward/contracts/world-state";
import { loadSnapshotFromFile } from "@steward/world/read";
import { createWorldWriter, readWorld, readWorldAsStored, WorldWriteError, type WorldWriter } from "@steward/world/world-store";
import { tracer, type Context } from "@steward/platform/tracing";
import type { Logger } from "@steward/platform/logger";
import { ADVISORY_LOCK_KEYS, type Sql } from "@steward/platform/db";
import { LeaderLock } from "@steward/platform/leader-lock";
import type { Registry } from "@steward/platform/metrics";
import type { ObserverConfig } from "./config.js";
import { createObserverMetrics } from "./observer-metrics.js";
import { advanceSeq, foldInto, markStale } from "./reduce.js";
import { removeLeftoverTempFiles, writeSnapshotFile } from "./snapshot-store.js";

export type ObserverSettings = Pick<
  ObserverConfig,
  "snapshotPath" | "observerId" | "snapshotDebounceMs" | "staleCheckMs" | "missedHeartbeats" | "snapshotMaxIntervalMs" | "streamReplicas"
> &
  Partial<Pick<ObserverConfig, "leaderRetryMs">>;

export interface ObserverDeps {
  config: ObserverSettings;
  nc: NatsConnection;
  logger: Logger;
  registry: Registry;
  /**
   * With a database, observers run as one active and any number of standbys: the active one holds a Postgres
   * advisory lock. A standby neither consumes the events nor writes the world store. Without one: always active.
   */
  sql?: Sql;
  /** Wall clock, injectable for tests; the reducer itself never reads it. */
  clock?: () => Date;
}

export interface Observer {
  start(): Promise<void>;
  /** Stops consuming, writes a final snapshot and acks what it holds. Leaves the connection open (it was injected). */
  stop(): Promise<void>;
  world(): WorldState;
  /** True while this observer folds and writes (always, without a lock). */
  isActive(): boolean;
}

type Decoded = { ok: true; event: NodeEvent } | { ok: false; reason: DeadLetter["reason"]; detail: string };

/** Parses and validates one stream message; the subject's node token must name the event's node. */
export function decodeEventMessage(subject: string, data: Uint8Array): Decoded {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(data).toString("utf8"));
  } catch (err) {
    return { ok: false, reason: "invalid_json", detail: (err as Error).message };
  }
  const res = NodeEvent.safeParse(raw);
  if (!res.success) {
    const detail = res.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    return { ok: false, reason: "schema", detail };
  }
  const prefix = `${EVENTS_SUBJECT_PREFIX}.`;
  const node = subject.startsWith(prefix) ? subject.slice(prefix.length).split(".")[0] : undefined;
  if (node !== res.data.node) {
    return { ok: false, reason: "subject_mismatch", detail: `subject ${subject} names node '${node ?? ""}' but the event is from node '${res.data.node}'` };
  }
  return { ok: true, event: res.data };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const nanos = (ms: number) => ms * 1_000_000;
/** A write that failed waits this long before the next try, so a full disk does not spin. */
const WRITE_RETRY_MS = 1_000;
const CONSUMER_RETRY_MS = 1_000;
/**
 * The file snapshot (the whole world, the observer's resume point) costs in proportion to the fleet. It is written
 * at an interval of this many times its last cost, so it takes at most ~1/FILE_COST_FACTOR of the observer's time
 * at any fleet size; a small world is written as often as the store, a 5,000-node one every few seconds.
 */
const FILE_COST_FACTOR = 20;
/** Upper bound on the file interval: a restart replays at most this much of the stream. */
const FILE_MAX_INTERVAL_MS = 30_000;

export function createObserver(deps: ObserverDeps): Observer {
  const { config, nc, logger, registry } = deps;
  const clock = deps.clock ?? (() => new Date());
  const metrics = createObserverMetrics(registry);
  const js = jetstream(nc);

  let world: WorldState = emptyWorld();
  let kv: KV | undefined;
  let store: WorldWriter | undefined;
  /** When the file snapshot is due next (adaptive, see FILE_COST_FACTOR). */
  let fileDueAt = 0;
  let messages: ConsumerMessages | undefined;
  let loop: Promise<void> | undefined;
  let ticker: ReturnType<typeof setInterval> | undefined;
  let writeTimer: ReturnType<typeof setTimeout> | undefined;
  let writing: Promise<void> | undefined;
  let dirty = false;
  let lastWriteAt = 0;
  /** True while not consuming: stopped, standing by, or handing over. */
  let stopping = true;
  let active = false;
  let leaderTimer: ReturnType<typeof setInterval> | undefined;
  /** Set by stop(): a lock check still in flight must not make a stopping observer active. */
  let closed = false;
  /** Activation and deactivation run one at a time, in the order the lock changed. */
  let transition: Promise<void> = Promise.resolve();
  /** Newest message processed (folded, skipped or dead-lettered) and not yet acked; AckAll covers the ones before it. */
  let unacked: JsMsg | undefined;

  /**
   * Resumes from whichever is further along: this observer's own file, or the world store (which another observer
   * may have written since: a standby taking over finds its file old or absent).
   */
  async function loadWorld(): Promise<WorldState> {
    const file = await loadSnapshotFromFile(config.snapshotPath);
    if (!file.ok && file.reason !== "snapshot_missing") logger.warn({ path: config.snapshotPath, reason: file.reason, detail: file.detail }, "snapshot file unusable, trying KV");
    // No settling wait: no other observer writes while this one loads, so an incomplete store is a torn write (below).
    let fromKv = kv ? await readWorld(kv, 30_000, 0) : undefined;
    if (kv && fromKv && !fromKv.ok && fromKv.reason === "snapshot_unreadable") {
      // Typically the previous observer died between writing node records and the header: read them as stored.
      logger.info({ detail: fromKv.detail }, "world store incomplete for readers; reading every node record as stored");
      fromKv = await readWorldAsStored(kv);
    }
    if (fromKv && !fromKv.ok && fromKv.reason !== "snapshot_missing") logger.warn({ reason: fromKv.reason, detail: fromKv.detail }, "world store unusable");
    if (file.ok && !(fromKv?.ok && fromKv.value.world.last_seq > file.value.world.last_seq)) {
      logger.info({ path: config.snapshotPath, last_seq: file.value.world.last_seq }, "resuming from snapshot file");
      return file.value.world;
    }
    if (fromKv?.ok) {
      logger.info({ last_seq: fromKv.value.world.last_seq, nodes: Object.keys(fromKv.value.world.nodes).length }, "resuming from the world store");
      return fromKv.value.world;
    }
    logger.info("no usable snapshot: replaying the stream from the start");
    return emptyWorld();
  }

  /** The snapshot is the source of truth for where to resume, so the consumer is rebuilt to start right after it. */
  async function recreateConsumer(): Promise<void> {
    const jsm = await jetstreamManager(nc);
    try {
      await jsm.consumers.delete(EVENTS_STREAM, OBSERVER_DURABLE);
    } catch (err) {
      const notFound = err instanceof JetStreamApiError ? err.code === 10014 : /not found/i.test((err as Error).message);
      if (!notFound) throw err;
    }
    await jsm.consumers.add(EVENTS_STREAM, {
      durable_name: OBSERVER_DURABLE,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: world.last_seq + 1,
      ack_policy: AckPolicy.All,
      ack_wait: nanos(30_000),
      // Acks trail the debounced snapshot; leave room so the server keeps delivering meanwhile.
      max_ack_pending: 20_000,
    });
  }

  function safeAck(m: JsMsg): void {
    try {
      m.ack();
    } catch (err) {
      logger.warn({ err: (err as Error).message, seq: m.seq }, "ack failed; the message will be redelivered and skipped");
    }
  }

  function updateNodeGauges(): void {
    let up = 0;
    let stale = 0;
    for (const n of Object.values(world.nodes)) {
      if (n.status === "up") up++;
      else stale++;
    }
    metrics.nodes.set({ status: "up" }, up);
    metrics.nodes.set({ status: "stale" }, stale);
  }

  function scheduleWrite(delayMs = config.snapshotDebounceMs): void {
    dirty = true;
    // Throttle, not debounce: under a steady stream a snapshot still goes out every `delayMs`.
    if (writeTimer || writing || stopping) return;
    writeTimer = setTimeout(() => {
      writeTimer = undefined;
      void writeNow();
    }, delayMs);
  }

  /**
   * Writes the nodes that changed to the world store (header last), then acks what it covers; the file snapshot
   * goes with it when due. Acks are flow control only: a restart resumes from its snapshot's sequence.
   */
  async function writeNow(forceFile = false): Promise<void> {
    while (writing) await writing;
    if (writeTimer) {
      clearTimeout(writeTimer);
      writeTimer = undefined;
    }
    if (!store) return;
    dirty = false;
    const writtenAt = clock().toISOString();
    const ack = unacked;
    const fileStart = performance.now();
    const fileDue = forceFile || Date.now() >= fileDueAt;
    const prepared = store.prepare(world, writtenAt);
    const fileJson = fileDue ? prepared.snapshotJson() : undefined;
    let retry = false;
    writing = (async () => {
      const end = metrics.snapshotWriteSeconds.startTimer();
      try {
        const r = await prepared.commit();
        metrics.snapshotsWritten.inc();
        metrics.nodesWritten.inc(r.nodesWritten);
        if (r.oversized.length > 0) {
          metrics.snapshotWriteErrors.inc({ store: "kv_oversized" }, r.oversized.length);
          logger.error({ nodes: r.oversized }, "node records too big for one KV message: left out of the world store (readers see them as unknown)");
        }
        lastWriteAt = clock().getTime();
        if (ack) {
          safeAck(ack);
          if (unacked === ack) unacked = undefined;
        }
      } catch (err) {
        metrics.snapshotWriteErrors.inc({ store: "kv" });
        logger.error({ err: (err as Error).message, failures: err instanceof WorldWriteError ? err.failures.length : undefined }, "world store write failed; retrying");
        retry = true;
      } finally {
        end();
      }
      if (fileJson !== undefined) {
        try {
          await writeSnapshotFile(config.snapshotPath, fileJson);
          metrics.fileSnapshotsWritten.inc();
        } catch (err) {
          metrics.snapshotWriteErrors.inc({ store: "file" });
          logger.error({ err: (err as Error).message, path: config.snapshotPath }, "snapshot file write failed");
        }
        const costMs = performance.now() - fileStart;
        const interval = Math.min(FILE_MAX_INTERVAL_MS, Math.max(config.snapshotDebounceMs, FILE_COST_FACTOR * costMs));
        metrics.fileIntervalSeconds.set(interval / 1000);
        fileDueAt = Date.now() + interval;
      }
      updateNodeGauges();
    })();
    try {
      await writing;
    } finally {
      writing = undefined;
    }
    if (retry) scheduleWrite(Math.max(WRITE_RETRY_MS, config.snapshotDebounceMs));
    else if (dirty) scheduleWrite();
    else if (Date.now() < fileDueAt && !stopping) scheduleFile();
  }

  /** A file snapshot skipped for cost is still written once due, even if nothing else changes meanwhile. */
  let fileTimer: ReturnType<typeof setTimeout> | undefined;
  function scheduleFile(): void {
    if (fileTimer) return;
    fileTimer = setTimeout(() => {
      fileTimer = undefined;
      if (!stopping && !writing && !writeTimer) void writeNow();
    }, Math.max(0, fileDueAt - Date.now()) + 1);
    fileTimer.unref?.();
  }

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
    if (seq <= world.last_seq) {
      // A redelivery of something already folded (e.g. acks lagged behind a restart).
      safeAck(m);
      return undefined;
    }
    // Each JsMsg getter decodes on every access: read the headers once.
    const headers = m.headers;
    const parent = contextFromHeaders(headers);
    const decoded = decodeEventMessage(m.subject, m.data);
    if (!decoded.ok) {
      return deadLetter(m, decoded.reason, decoded.detail, parent).then(() => {
        world = advanceSeq(world, seq);
        settle(m);
      });
    }
    const event = decoded.event;
    const incoming = headers?.get("traceparent") || undefined;
    const span = tracer().startSpan("observer.fold", { attributes: { "steward.node": event.node, "steward.event_type": event.type, "steward.event_id": event.id, "messaging.message.sequence": seq } }, parent);
    try {
      // The world keeps the traceparent the event arrived with: it is part of the stream, so a replay
      // reproduces the world exactly, and the supervisor continues the probe's trace from it.
      // The observer owns `world` (loaded or built here), so it folds in place: no copy of every node per event.
      foldInto(world, event, { seq, traceparent: incoming });
      metrics.folded.inc({ type: event.type });
      metrics.foldLagSeconds.observe(Math.max(0, (clock().getTime() - m.time.getTime()) / 1000));
    } catch (err) {
      // The reducer is total; if it ever throws, skip the event rather than stall the stream on it.
      span.recordException(err as Error);
      logger.error({ err: (err as Error).message, seq }, "fold failed; event skipped");
      world = advanceSeq(world, seq);
    } finally {
      span.end();
    }
    settle(m);
    return undefined;
  }

  function settle(m: JsMsg): void {
    unacked = m;
    metrics.lastSeq.set(world.last_seq);
    scheduleWrite();
  }

  async function run(): Promise<void> {
    while (!stopping) {
      try {
        const consumer = await js.consumers.get(EVENTS_STREAM, OBSERVER_DURABLE);
        messages = await consumer.consume({ max_messages: 512, abort_on_missing_resource: true });
        for await (const m of messages) {
          if (stopping) break;
          const pending = handle(m);
          if (pending) await pending;
        }
      } catch (err) {
        if (!stopping) logger.error({ err: (err as Error).message }, "consuming events failed; recreating the consumer");
      }
      if (stopping) break;
      await sleep(CONSUMER_RETRY_MS);
      // A consumer that vanished may have been recreated by an observer that took over: never take it back unless we hold the lock.
      if (stopping || (leader && !(await leader.check()))) break;
      await recreateConsumer().catch((err: Error) => logger.error({ err: err.message }, "recreating the consumer failed"));
    }
  }

  function onTick(): void {
    const now = clock();
    const next = markStale(world, now, { missedHeartbeats: config.missedHeartbeats });
    if (next !== world) {
      const stale = Object.values(next.nodes)
        .filter((n) => n.status === "stale" && world.nodes[n.name]?.status !== "stale")
        .map((n) => n.name);
      logger.warn({ nodes: stale }, "nodes stale: heartbeats stopped");
      world = next;
      updateNodeGauges();
      scheduleWrite();
    } else if (now.getTime() - lastWriteAt >= config.snapshotMaxIntervalMs && !writing && !writeTimer) {
      // Written even when idle, so `written_at` shows the observer is alive.
      void writeNow();
    }
  }

  const leader = deps.sql
    ? new LeaderLock(
        deps.sql,
        logger,
        (isLeader) => {
          transition = transition.then(() => (isLeader ? takeOver() : standBy())).catch((err: unknown) => logger.error({ err: (err as Error).message }, "observer role change failed"));
        },
        ADVISORY_LOCK_KEYS.observer,
      )
    : undefined;

  /** Becomes the active observer: resumes from the newest world it can find and consumes from the sequence after it. */
  async function activate(): Promise<void> {
    if (!kv) return;
    // A fresh writer: the first write after a takeover rewrites every node and drops keys of nodes this world lacks.
    store = createWorldWriter({ kv, observerId: config.observerId, maxRecordBytes: nc.info?.max_payload ? nc.info.max_payload - 4096 : undefined });
    unacked = undefined;
    fileDueAt = 0;
    world = await loadWorld();
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(EVENTS_STREAM);
    if (world.last_seq > info.state.last_seq) {
      // The stream was recreated: its sequences restarted. Keep what we know and fold the new stream on top;
      // per-item event-time ordering keeps old state from being regressed.
      logger.warn({ snapshot_seq: world.last_seq, stream_seq: info.state.last_seq }, "snapshot is ahead of the stream; re-reading the stream from its start");
      world = { ...world, last_seq: 0 };
    }
    metrics.lastSeq.set(world.last_seq);
    updateNodeGauges();
    await recreateConsumer();
    stopping = false;
    await writeNow(true);
    loop = run();
    ticker = setInterval(onTick, Math.min(config.staleCheckMs, config.snapshotMaxIntervalMs));
    active = true;
    metrics.active.set(1);
  }

  /** Stops consuming and folding; writes already under way finish. */
  async function halt(): Promise<void> {
    stopping = true;
    if (ticker) clearInterval(ticker);
    ticker = undefined;
    if (writeTimer) clearTimeout(writeTimer);
    writeTimer = undefined;
    if (fileTimer) clearTimeout(fileTimer);
    fileTimer = undefined;
    await messages?.close().catch(() => undefined);
    await loop;
    loop = undefined;
    messages = undefined;
  }

  /** Stops consuming and writing; does not write a last snapshot (another observer may own the store by now). */
  async function deactivate(): Promise<void> {
    active = false;
    metrics.active.set(0);
    store = undefined;
    await halt();
    while (writing) await writing;
  }

  async function takeOver(): Promise<void> {
    if (active || closed || !leader?.isLeader) return;
    try {
      await activate();
      logger.info({ last_seq: world.last_seq, nodes: Object.keys(world.nodes).length, observer_id: config.observerId }, "took over as the active observer");
    } catch (err) {
      // Holding the lock without folding would block every standby: give it up and try again later.
      logger.error({ err: (err as Error).message }, "taking over failed; releasing the lock");
      await deactivate();
      await leader.release();
    }
  }

  async function standBy(): Promise<void> {
    if (!active) return;
    logger.warn({ last_seq: world.last_seq, observer_id: config.observerId }, "lost the observer lock; standing by");
    await deactivate();
  }

  return {
    async start() {
      closed = false;
      await mkdir(dirname(config.snapshotPath), { recursive: true });
      const removed = await removeLeftoverTempFiles(config.snapshotPath);
      if (removed) logger.info({ removed }, "removed temp files left by an interrupted snapshot write");
      await ensureStreams(nc, { replicas: config.streamReplicas });
      kv = await openWorldBucket(nc, config.streamReplicas);
      metrics.active.set(0);
      if (!leader) {
        await activate();
        logger.info({ last_seq: world.last_seq, nodes: Object.keys(world.nodes).length, observer_id: config.observerId }, "observer started");
        return;
      }
      leaderTimer = setInterval(() => void leader.check(), config.leaderRetryMs ?? 1_000);
      await leader.check();
      await transition;
      if (active) logger.info({ last_seq: world.last_seq, nodes: Object.keys(world.nodes).length, observer_id: config.observerId }, "observer started");
      else logger.info({ observer_id: config.observerId }, "observer started as standby: another observer holds the lock");
    },
    async stop() {
      closed = true;
      if (leaderTimer) clearInterval(leaderTimer);
      leaderTimer = undefined;
      await transition;
      if (active) {
        // The lock is still ours until released below: the last snapshot and acks are safe to write.
        await halt();
        await writeNow(true);
      }
      await deactivate();
      await leader?.release();
      await transition;
      logger.info({ last_seq: world.last_seq }, "observer stopped");
    },
    // A shallow copy: callers keep a stable view while the observer goes on folding into its own.
    world: () => ({ ...world, nodes: { ...world.nodes } }),
    isActive: () => active,
  };
}

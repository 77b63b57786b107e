import { connect, nkeyAuthenticator, headers as natsHeaders, type MsgHdrs, type NatsConnection, type ConnectionOptions } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, StorageType, RetentionPolicy, DiscardPolicy } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { context, propagation, type Context } from "@opentelemetry/api";
import { natsInboxPrefix } from "@steward/contracts/nats-permissions";
import { sleep } from "./sleep.js";
import { natsAuthFromEnv, natsCaFileFromEnv, type NatsAuth } from "./nats-auth.js";
import { DLQ_STREAM, DLQ_SUBJECT_PREFIX, EVENTS_STREAM, EVENTS_SUBJECTS, WORLD_BUCKET } from "@steward/contracts/subjects";

export type { NatsConnection, JetStreamClient, JetStreamManager, KV, MsgHdrs };

/**
 * The one place a Steward process connects to NATS. Its identity is the nkey seed from `NATS_NKEY_SEED_FILE` or
 * `NATS_NKEY_SEED` (or `auth`; null connects without one, to an open server): the client signs the server's nonce
 * with it, and its inboxes live under its own prefix, the only `_INBOX` subjects its permissions let it subscribe to.
 * With `NATS_CA_FILE` (unless `opts.tls` is given) it speaks TLS and trusts only that CA for the server's certificate.
 */
export async function connectNats(url: string, name: string, opts: Partial<ConnectionOptions> = {}, auth: NatsAuth | null | undefined = natsAuthFromEnv(process.env)): Promise<NatsConnection> {
  const identity: Partial<ConnectionOptions> = auth
    ? { authenticator: nkeyAuthenticator(new TextEncoder().encode(auth.seed)), inboxPrefix: natsInboxPrefix(auth.publicKey) }
    : {};
  const caFile = opts.tls === undefined ? natsCaFileFromEnv(process.env) : undefined;
  if (caFile) identity.tls = { caFile };
  return connect({ servers: url.split(","), name, maxReconnectAttempts: -1, reconnectTimeWait: 500, ...identity, ...opts });
}

export interface StreamSettings {
  /** Replicas: 1 for a single server, 3 for the production cluster. */
  replicas?: number;
  /** Max age of events kept in the stream (ms). Default 7 days. */
  maxAgeMs?: number;
  /** De-duplication window for Nats-Msg-Id (ms). Default 2 minutes. */
  duplicateWindowMs?: number;
}

const nanos = (ms: number): number => ms * 1_000_000;

/** Creates (or updates) the streams and the KV bucket Steward needs. Idempotent. */
export async function ensureStreams(nc: NatsConnection, s: StreamSettings = {}): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const replicas = s.replicas ?? 1;
  const events = {
    name: EVENTS_STREAM,
    subjects: [EVENTS_SUBJECTS],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    max_age: nanos(s.maxAgeMs ?? 7 * 24 * 3_600_000),
    duplicate_window: nanos(s.duplicateWindowMs ?? 120_000),
    num_replicas: replicas,
  };
  const dlq = {
    name: DLQ_STREAM,
    subjects: [`${DLQ_SUBJECT_PREFIX}.>`],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    max_age: nanos(30 * 24 * 3_600_000),
    num_replicas: replicas,
  };
  for (const cfg of [events, dlq]) {
    try {
      await jsm.streams.info(cfg.name);
      await jsm.streams.update(cfg.name, cfg);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await jsm.streams.add(cfg);
    }
  }
  await openWorldBucket(nc, replicas);
  // Readers open the bucket too (with the default), and whoever comes first creates it; the owner of the streams
  // brings its replica count to the setting, so a cluster deployment does not keep a single-replica world.
  const kvStream = `KV_${WORLD_BUCKET}`;
  const kv = await jsm.streams.info(kvStream);
  if (kv.config.num_replicas !== replicas) await jsm.streams.update(kvStream, { ...kv.config, num_replicas: replicas });
}

function isNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; message?: string; api_error?: { err_code?: number } };
  return e?.api_error?.err_code === 10059 || /not found/i.test(e?.message ?? "");
}

export interface OpenWorldOptions {
  /** How long a reader waits for the observer to create the store when it may not create it itself (60 s). */
  waitForOwnerMs?: number;
  /** Called once, when the first attempt was refused and the reader starts waiting: say so in the log. */
  onWaiting?: (err: Error) => void;
}

/**
 * Opens the world store, creating it where this identity may. Under NATS identities only the observer may create
 * it (docs/access.md), so a reader that starts first is refused: it waits for the observer, retrying with backoff,
 * instead of exiting and being restarted (every reader crashed once on a fresh compose deploy). It gives up with the
 * first refusal after `waitForOwnerMs`.
 */
export async function openWorldBucket(nc: NatsConnection, replicas = 1, opts: OpenWorldOptions = {}): Promise<KV> {
  const waitMs = opts.waitForOwnerMs ?? 60_000;
  const deadline = Date.now() + waitMs;
  let pause = 100;
  let first: Error | undefined;
  for (;;) {
    try {
      return await new Kvm(nc).create(WORLD_BUCKET, { history: 1, replicas, storage: StorageType.File });
    } catch (err) {
      const e = err as Error;
      if (!isRefusedOrUnanswered(e) || nc.isClosed()) throw e;
      if (!first) {
        first = e;
        opts.onWaiting?.(e);
      }
      if (Date.now() + pause > deadline) throw new Error(`world store ${WORLD_BUCKET} not there after ${waitMs} ms and this identity may not create it (is the observer running?): ${first.message}`);
      await sleep(pause);
      pause = Math.min(pause * 2, 2_000);
    }
  }
}

/** A permission refusal, or a JetStream request nobody answered (the refusal as some servers report it). */
function isRefusedOrUnanswered(err: Error): boolean {
  return /permission|timeout|no responders/i.test(`${err.name} ${err.message}`);
}

/** Injects the active (or given) trace context into NATS headers. */
export function traceHeaders(ctx: Context = context.active(), h: MsgHdrs = natsHeaders()): MsgHdrs {
  propagation.inject(ctx, h, { set: (c, k, v) => c.set(k, String(v)) });
  return h;
}

/** Extracts the trace context a publisher put in NATS headers. */
export function contextFromHeaders(h: MsgHdrs | undefined, base: Context = context.active()): Context {
  if (!h) return base;
  return propagation.extract(base, h, {
    get: (c, k) => c.get(k) || undefined,
    keys: (c) => c.keys(),
  });
}

export { natsHeaders, jetstream, jetstreamManager };

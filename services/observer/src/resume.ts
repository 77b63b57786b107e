import { AckPolicy, DeliverPolicy, JetStreamApiError } from "@nats-io/jetstream";
import { EVENTS_STREAM, OBSERVER_DURABLE } from "@steward/contracts/subjects";
import { jetstreamManager, type KV, type NatsConnection } from "@steward/platform/bus";
import { emptyWorld, type WorldState } from "@steward/contracts/world-state";
import type { Logger } from "@steward/platform/logger";
import { loadSnapshotFromFile } from "@steward/world/read";
import { readWorld, readWorldAsStored } from "@steward/world/world-store";

const nanos = (ms: number) => ms * 1_000_000;

/**
 * Resumes from whichever is further along: this observer's own file, or the world store (which another observer
 * may have written since: a standby taking over finds its file old or absent).
 */
export async function loadWorld(snapshotPath: string, kv: KV | undefined, logger: Logger): Promise<WorldState> {
  const file = await loadSnapshotFromFile(snapshotPath);
  if (!file.ok && file.reason !== "snapshot_missing") logger.warn({ path: snapshotPath, reason: file.reason, detail: file.detail }, "snapshot file unusable, trying KV");
  // No settling wait: no other observer writes while this one loads, so an incomplete store is a torn write (below).
  let fromKv = kv ? await readWorld(kv, 30_000, 0) : undefined;
  if (kv && fromKv && !fromKv.ok && (fromKv.reason === "snapshot_incomplete" || fromKv.reason === "snapshot_unreadable")) {
    // Typically the previous observer died between writing node records and the header: read them as stored.
    logger.info({ detail: fromKv.detail }, "world store incomplete for readers; reading every node record as stored");
    fromKv = await readWorldAsStored(kv);
  }
  if (fromKv && !fromKv.ok && fromKv.reason !== "snapshot_missing") logger.warn({ reason: fromKv.reason, detail: fromKv.detail }, "world store unusable");
  if (file.ok && !(fromKv?.ok && fromKv.value.world.last_seq > file.value.world.last_seq)) {
    logger.info({ path: snapshotPath, last_seq: file.value.world.last_seq }, "resuming from snapshot file");
    return file.value.world;
  }
  if (fromKv?.ok) {
    logger.info({ last_seq: fromKv.value.world.last_seq, nodes: Object.keys(fromKv.value.world.nodes).length }, "resuming from the world store");
    return fromKv.value.world;
  }
  logger.info("no usable snapshot: replaying the stream from the start");
  return emptyWorld();
}

/**
 * A world loaded from a snapshot ahead of the events stream means the stream was recreated (its sequences
 * restarted): keep what is known and fold the new stream on top; per-item event-time ordering keeps old state
 * from being regressed.
 */
export async function alignWithStream(nc: NatsConnection, world: WorldState, logger: Logger): Promise<WorldState> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(EVENTS_STREAM);
  if (world.last_seq <= info.state.last_seq) return world;
  logger.warn({ snapshot_seq: world.last_seq, stream_seq: info.state.last_seq }, "snapshot is ahead of the stream; re-reading the stream from its start");
  return { ...world, last_seq: 0 };
}

/**
 * The snapshot is the source of truth for where to resume, so the consumer is rebuilt to start right after it.
 * Returns how many messages the stream holds for it from there.
 */
export async function recreateConsumer(nc: NatsConnection, lastSeq: number): Promise<number> {
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.consumers.delete(EVENTS_STREAM, OBSERVER_DURABLE);
  } catch (err) {
    const notFound = err instanceof JetStreamApiError ? err.code === 10014 : /not found/i.test((err as Error).message);
    if (!notFound) throw err;
  }
  const info = await jsm.consumers.add(EVENTS_STREAM, {
    durable_name: OBSERVER_DURABLE,
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: lastSeq + 1,
    ack_policy: AckPolicy.All,
    ack_wait: nanos(30_000),
    // Acks trail the debounced snapshot; leave room so the server keeps delivering meanwhile.
    max_ack_pending: 20_000,
  });
  return info.num_pending;
}

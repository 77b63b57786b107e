import { stat } from "node:fs/promises";
import { EVENTS_STREAM, assertSubjectToken, containerInspectSubject, logTailSubject, nodeEventsSubjects } from "@steward/contracts/subjects";
import { LogTailReply } from "@steward/contracts/log-tail";
import { ContainerInspectReply } from "@steward/contracts/container-inspect";
import { NodeEvent } from "@steward/contracts/events";
import { jetstream, jetstreamManager, openWorldBucket, traceHeaders, type KV, type NatsConnection } from "@steward/platform/bus";
import { loadFleetSpec, type FleetSpec } from "@steward/fleet/fleet-spec";
import { DeliverPolicy } from "@nats-io/jetstream";
import { readWorld, readWorldNodes } from "@steward/world/world-store";
import { readDrift } from "@steward/world/drift-store";
import type { EvidenceSources } from "./evidence.js";

export interface NatsSourcesOptions {
  fleetSpecPath: string;
  logTailBytes: number;
  logTailTimeoutMs: number;
  /** How long one read of a node's events waits for more when none are pending (default 1 s; it stops sooner once none are). */
  eventsFetchExpiresMs?: number;
}

/** Missing is "nothing yet" (undefined); unusable is an error the evidence notes, never an empty world. */
function orMissing<T>(r: { ok: true; value: T } | { ok: false; reason: string; detail: string }): T | undefined {
  if (r.ok) return r.value;
  if (r.reason.endsWith("_missing")) return undefined;
  throw new Error(r.detail);
}

/** Evidence from the real system: KV `steward_world`, the STEWARD_EVENTS stream, the fleet spec file, node-agents' log tails. */
export function createNatsSources(nc: NatsConnection, opts: NatsSourcesOptions): EvidenceSources {
  let kv: KV | undefined;
  let cached: { stamp: string; spec: FleetSpec } | undefined;
  const bucket = async (): Promise<KV> => (kv ??= await openWorldBucket(nc, 1, { waitForOwnerMs: 5_000 }));

  return {
    async spec() {
      const s = await stat(opts.fleetSpecPath);
      const stamp = `${s.mtimeMs}:${s.size}:${s.ino}`;
      if (cached?.stamp === stamp) return cached.spec;
      const spec = await loadFleetSpec(opts.fleetSpecPath);
      cached = { stamp, spec };
      return spec;
    },
    // Only the nodes the task is about: one record each, never the whole fleet.
    world: async (nodes) => orMissing(nodes ? await readWorldNodes(await bucket(), nodes) : await readWorld(await bucket())),
    drift: async () => orMissing(await readDrift(await bucket())),

    async events(node, sinceMs, limit) {
      const subject = nodeEventsSubjects(assertSubjectToken(node));
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info(EVENTS_STREAM, { subjects_filter: subject });
      const total = Object.values(info.state.subjects ?? {}).reduce((a, n) => a + n, 0);
      if (total === 0) return [];
      const c = await jetstream(nc).consumers.get(EVENTS_STREAM, { filter_subjects: subject, deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(sinceMs).toISOString() });
      const out: NodeEvent[] = [];
      // An ordered consumer is ephemeral: the server drops it once idle. Stop as soon as nothing is pending.
      const iter = await c.fetch({ max_messages: Math.min(total, 5000), expires: opts.eventsFetchExpiresMs ?? 1000 });
      for await (const m of iter) {
        const parsed = NodeEvent.safeParse(m.json());
        if (parsed.success) {
          out.push(parsed.data);
          if (out.length > limit) out.shift();
        }
        if (m.info.pending === 0) break;
      }
      return out;
    },

    async logTail(node, service, maxBytes, range) {
      const msg = await nc.request(logTailSubject(assertSubjectToken(node)), JSON.stringify({ service, max_bytes: maxBytes ?? opts.logTailBytes, ...(range?.since ? { since: range.since } : {}), ...(range?.until ? { until: range.until } : {}) }), { timeout: opts.logTailTimeoutMs, headers: traceHeaders() });
      return LogTailReply.parse(msg.json());
    },

    async containerInspect(node, service) {
      const msg = await nc.request(containerInspectSubject(assertSubjectToken(node)), JSON.stringify({ service }), { timeout: opts.logTailTimeoutMs, headers: traceHeaders() });
      return ContainerInspectReply.parse(msg.json());
    },
  };
}

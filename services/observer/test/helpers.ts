import { NodeEvent } from "@steward/contracts/events";
import { eventSubject } from "@steward/contracts/subjects";
import { jetstream, type NatsConnection } from "@steward/platform/bus";
import type { WorldState } from "@steward/contracts/world-state";

/** Small deterministic PRNG, so a failing run can be reproduced. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STATES = ["running", "running", "running", "exited", "failed", "stopped", "starting"] as const;
const SERVICES = ["web", "db", "cache", "worker"];

/**
 * Mixed events for the given nodes, roughly in time order with some arriving late (older timestamps),
 * and a long heartbeat interval so nothing goes stale while a test runs.
 */
export function makeEvents(count: number, opts: { seed: number; nodes: string[]; startMs?: number; idPrefix?: string }): NodeEvent[] {
  const rnd = prng(opts.seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)] as T;
  const start = opts.startMs ?? Date.now();
  const out: NodeEvent[] = [];
  for (let i = 0; i < count; i++) {
    const node = pick(opts.nodes);
    const late = rnd() < 0.1 ? Math.floor(rnd() * 5000) : 0;
    const ts = new Date(start + i * 37 - late).toISOString();
    const id = `${opts.idPrefix ?? "event"}-${opts.seed}-${String(i).padStart(4, "0")}`;
    const r = rnd();
    let raw: unknown;
    if (r < 0.45) {
      const state = pick(STATES);
      raw = { type: "service", id, node, ts, service: pick(SERVICES), state, health: state === "running" ? pick(["healthy", "unhealthy"]) : "none", pid: state === "running" ? 100 + i : undefined, starts: Math.floor(rnd() * 3) };
    } else if (r < 0.7) {
      const ok = rnd() < 0.7;
      raw = { type: "health_check", id, node, ts, service: pick(SERVICES), check: pick(["http", "tcp"]), ok, consecutive_failures: ok ? 0 : 1 + Math.floor(rnd() * 3) };
    } else if (r < 0.85) {
      raw = { type: "host", id, node, ts, load1: Math.round(rnd() * 400) / 100, mem_used_pct: Math.round(rnd() * 100), disks: [{ path: "/", used_pct: Math.round(rnd() * 100), free_bytes: 1e9 }] };
    } else {
      raw = {
        type: "heartbeat",
        id,
        node,
        ts,
        interval_ms: 600_000,
        started_at: new Date(start).toISOString(),
        services: SERVICES.filter(() => rnd() < 0.5).map((service) => ({ service, state: pick(STATES), health: "none" })),
      };
    }
    out.push(NodeEvent.parse(raw));
  }
  return out;
}

export async function publishEvents(nc: NatsConnection, events: NodeEvent[], msgId: (e: NodeEvent) => string = (e) => e.id): Promise<number> {
  const js = jetstream(nc);
  let last = 0;
  for (const e of events) {
    const ack = await js.publish(eventSubject(e.node, e.type), JSON.stringify(e), { msgID: msgId(e) });
    last = ack.seq;
  }
  return last;
}

/** A world without its stream positions (`last_seq`, each node's `recent_event_seqs`): for streams that hold extra messages. */
export function withoutSeq(w: WorldState): Omit<WorldState, "last_seq"> {
  const { last_seq: _ignored, ...rest } = w;
  const nodes: WorldState["nodes"] = {};
  for (const [name, { recent_event_seqs: _seqs, ...node }] of Object.entries(w.nodes)) nodes[name] = node;
  return { ...rest, nodes };
}

import type { CheckSample, HealthCheckEvent, HeartbeatEvent, HostEvent, NodeEvent, RepoEvent, SecretEvent, ServiceEvent, ServiceObservation } from "@steward/contracts/events";
import type { NodeState, ServiceState, WorldState } from "@steward/contracts/world-state";

/** How many event ids per node the world remembers to drop re-sent events JetStream's de-duplication window missed. */
export const RECENT_EVENT_IDS = 64;

/** Heartbeat interval assumed for a node that has sent events but no heartbeat yet. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 5_000;

/** `updated_at` of a service known only from a health check: any real observation of it is newer. */
const NEVER = new Date(0).toISOString();

export interface FoldMeta {
  /** JetStream stream sequence of the message carrying the event. */
  seq: number;
  /** W3C traceparent the event arrived with, stored so the supervisor can continue the trace. */
  traceparent?: string | undefined;
}

const ms = (iso: string): number => Date.parse(iso);
const newer = (a: string, b: string): string => (ms(a) >= ms(b) ? a : b);

/** Drops keys whose value is undefined, so a world survives a JSON round trip unchanged. (A for-in loop: this is the hot path.) */
function compact<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const k in o) {
    const v = (o as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = v;
  }
  return out as T;
}

/** Only the stream position moves: used for a message that is not folded (dead-lettered, or a duplicate). */
export function advanceSeq(world: WorldState, seq: number): WorldState {
  if (seq <= world.last_seq) return world;
  return { ...world, last_seq: seq };
}

/**
 * Folds one event into the world. Pure and deterministic: never mutates `world`, never reads the clock.
 * - A stream sequence at or below `last_seq` (a redelivery) returns `world` itself.
 * - An event id the node already had (re-sent with a new Nats-Msg-Id) only advances `last_seq`; the same message
 *   already in the node's record (after a torn write: `seenInNode`) advances it and is counted.
 * - Each part of a node (a service, a check, host figures, heartbeat fields) only moves forward in event time,
 *   so an older event arriving late never regresses newer state.
 */
export function reduceWorld(world: WorldState, event: NodeEvent, meta: FoldMeta): WorldState {
  if (meta.seq <= world.last_seq) return world;
  const draft: WorldState = { ...world, nodes: { ...world.nodes } };
  foldInto(draft, event, meta);
  return draft;
}

/**
 * The same fold as `reduceWorld`, applied in place to a world the caller owns (the observer's own copy), so the
 * hot path does not copy the whole node map for every event. Node and service objects are still replaced, never
 * mutated, so anything that kept a reference to an older node sees it unchanged.
 */
export function foldInto(draft: WorldState, event: NodeEvent, meta: FoldMeta): void {
  if (meta.seq <= draft.last_seq) return;
  const prev = draft.nodes[event.node];
  const seen = seenInNode(prev, event.id, meta.seq);
  if (seen !== "new") {
    draft.last_seq = meta.seq;
    if (seen === "in_record") countApplied(draft, event.ts);
    return;
  }

  const base = prev ?? newNode(event.node);
  let node: NodeState;
  switch (event.type) {
    case "service":
      node = foldService(base, event, meta.traceparent);
      break;
    case "health_check":
      node = foldHealthCheck(base, event);
      break;
    case "host":
      node = foldHost(base, event);
      break;
    case "heartbeat":
      node = foldHeartbeat(base, event, meta.traceparent);
      break;
    case "repo":
      node = foldRepo(base, event);
      break;
    case "secret":
      node = foldSecret(base, event);
      break;
    default: {
      const never: never = event;
      return never;
    }
  }
  const ids = base.recent_event_ids ?? [];
  // A record from before the sequences were kept: 0 is no stream sequence, so none of those ids is "in_record".
  const seqs = base.recent_event_seqs?.length === ids.length ? base.recent_event_seqs : ids.map(() => 0);
  const from = ids.length >= RECENT_EVENT_IDS ? ids.length - RECENT_EVENT_IDS + 1 : 0;
  const recent = ids.slice(from);
  const recentSeqs = seqs.slice(from);
  recent.push(event.id);
  recentSeqs.push(meta.seq);
  draft.nodes[event.node] = { ...node, recent_event_ids: recent, recent_event_seqs: recentSeqs };
  draft.last_seq = meta.seq;
  countApplied(draft, event.ts);
}

function countApplied(draft: WorldState, ts: string): void {
  draft.events_applied += 1;
  draft.event_time = draft.event_time === null ? ts : newer(ts, draft.event_time);
}

/**
 * What a node's record already says about a message (its event id and stream sequence):
 * - `new`: the node does not list the id: fold it.
 * - `duplicate`: the node lists the id from an earlier message (the agent re-sent it after JetStream's de-duplication
 *   window): only the stream position moves, it is not counted.
 * - `in_record`: the node lists the id from this very message. The record was written after folding it, but the
 *   world's header was not (the observer died between a write's node records and its header, and the one resuming
 *   from the header's `last_seq` reads it again): it was applied, so it counts, but nothing is folded again.
 */
export type SeenInNode = "new" | "duplicate" | "in_record";

export function seenInNode(node: NodeState | undefined, id: string, seq: number): SeenInNode {
  const i = node?.recent_event_ids?.lastIndexOf(id) ?? -1;
  if (i < 0) return "new";
  const seqs = node?.recent_event_seqs;
  return seqs?.length === node?.recent_event_ids?.length && seqs?.[i] === seq ? "in_record" : "duplicate";
}

function newNode(name: string): NodeState {
  return {
    name,
    status: "up",
    last_heartbeat: null,
    heartbeat_interval_ms: DEFAULT_HEARTBEAT_INTERVAL_MS,
    agent_started_at: null,
    dropped_events: 0,
    host: null,
    services: {},
  };
}

function withService(node: NodeState, svc: ServiceState): NodeState {
  return { ...node, services: { ...node.services, [svc.name]: svc } };
}

/** The fields of a service an observation states; equal fields mean a restatement brought nothing new. */
const OBSERVED = ["state", "health", "pid", "exit_code", "signal", "starts", "declared", "detail", "config_hash", "desired_config_hash", "image_digest", "restart_count"] as const;

function observedPart(o: ServiceObservation | ServiceState) {
  return compact({
    state: o.state,
    health: o.health,
    pid: o.pid,
    exit_code: o.exit_code,
    signal: o.signal,
    starts: o.starts,
    declared: o.declared,
    detail: o.detail,
    config_hash: o.config_hash,
    desired_config_hash: o.desired_config_hash,
    image_digest: o.image_digest,
    restart_count: o.restart_count,
  });
}

/**
 * Whether `o` restates `s` (observedPart(s) equals observedPart(o)) without building either: an absent field and an
 * undefined one are the same to both, so comparing field by field is the same test. Heartbeats restate every service
 * every few seconds; this runs 20 times per heartbeat.
 */
function sameObserved(s: ServiceState, o: ServiceObservation): boolean {
  for (const k of OBSERVED) if (s[k] !== o[k]) return false;
  return true;
}

function observe(prev: ServiceState | undefined, name: string, o: ServiceObservation, ts: string, eventId: string, traceparent: string | undefined): ServiceState {
  return compact({
    name,
    ...observedPart(o),
    since: prev && prev.state === o.state ? prev.since : ts,
    updated_at: ts,
    checks: prev?.checks ?? {},
    traceparent,
    last_event_id: eventId,
  });
}

function foldService(node: NodeState, e: ServiceEvent, traceparent: string | undefined): NodeState {
  const prev = node.services[e.service];
  if (prev && ms(e.ts) < ms(prev.updated_at)) return node;
  return withService(node, observe(prev, e.service, e, e.ts, e.id, traceparent));
}

function foldHealthCheck(node: NodeState, e: HealthCheckEvent): NodeState {
  return foldCheck(node, { service: e.service, check: e.check, ok: e.ok, consecutive_failures: e.consecutive_failures, detail: e.detail, at: e.ts }, e.id);
}

/** The service a check names before anything else is known about it: `unknown` (never "missing"); its first real observation replaces that. */
function unknownService(c: CheckSample, eventId: string): ServiceState {
  return { name: c.service, state: "unknown", health: "unknown", starts: 0, declared: true, since: c.at, updated_at: NEVER, checks: {}, last_event_id: eventId };
}

/** The check to store for a sample, or undefined when the world's is newer or already the same. */
function nextCheck(svc: ServiceState | undefined, c: CheckSample): ServiceState["checks"][string] | undefined {
  const prevCheck = svc?.checks[c.check];
  if (prevCheck && ms(c.at) < ms(prevCheck.at)) return undefined;
  if (prevCheck && prevCheck.at === c.at && prevCheck.ok === c.ok && prevCheck.consecutive_failures === c.consecutive_failures && prevCheck.detail === c.detail) return undefined;
  return compact({ ok: c.ok, consecutive_failures: c.consecutive_failures, detail: c.detail, at: c.at });
}

/** One check result (from its event), kept only if it is not older than what the world has. */
function foldCheck(node: NodeState, c: CheckSample, eventId: string): NodeState {
  const svc = node.services[c.service] ?? unknownService(c, eventId);
  const check = nextCheck(svc, c);
  if (!check) return node;
  return withService(node, { ...svc, checks: { ...svc.checks, [c.check]: check } });
}

function foldHost(node: NodeState, e: HostEvent): NodeState {
  if (node.host && ms(e.ts) < ms(node.host.at)) return node;
  return { ...node, host: { load1: e.load1, mem_used_pct: e.mem_used_pct, disks: e.disks.map((d) => ({ ...d })), at: e.ts } };
}

function foldRepo(node: NodeState, e: RepoEvent): NodeState {
  if (node.repo && ms(e.ts) < ms(node.repo.at)) return node;
  const { type: _t, id: _i, node: _n, ts, ...repo } = e;
  return { ...node, repo: { ...repo, dirty: [...repo.dirty], colliding_untracked: [...repo.colliding_untracked], at: ts } };
}

function foldSecret(node: NodeState, e: SecretEvent): NodeState {
  const stores = node.secrets?.[e.secret] ?? {};
  const prev = stores[e.store];
  if (prev && ms(e.ts) < ms(prev.at)) return node;
  const entry = compact({ status: e.status, fingerprint: e.fingerprint, detail: e.detail, at: e.ts });
  return { ...node, secrets: { ...node.secrets, [e.secret]: { ...stores, [e.store]: entry } } };
}

function foldHeartbeat(node: NodeState, e: HeartbeatEvent, traceparent: string | undefined): NodeState {
  let next = node;
  if (node.last_heartbeat === null || ms(e.ts) >= ms(node.last_heartbeat)) {
    next = {
      ...node,
      status: "up",
      last_heartbeat: e.ts,
      heartbeat_interval_ms: e.interval_ms,
      agent_started_at: e.started_at,
      dropped_events: e.dropped_events,
    };
  }
  // Level-based: the restatement repairs a missed event, but never overrides a newer observation.
  // One copy of the service map for the whole heartbeat, and at most one copy of each service and of each service's
  // check map (objects this fold made itself are filled in place): 20 services with 20 checks were 20 node copies,
  // 20 service-map copies and 40 throwaway objects per heartbeat, the observer's main source of garbage.
  let services: Record<string, ServiceState> | undefined;
  /** Services (and their check maps) created by this fold: nothing else holds them yet, so they may be mutated. */
  let own: Set<string> | undefined;
  let ownChecks: Set<string> | undefined;
  const at = ms(e.ts);
  for (const o of e.services) {
    const prev = (services ?? next.services)[o.service];
    if (prev && at < ms(prev.updated_at)) continue;
    services ??= { ...next.services };
    services[o.service] = prev && sameObserved(prev, o) ? { ...prev, updated_at: e.ts } : observe(prev, o.service, o, e.ts, e.id, traceparent);
    (own ??= new Set()).add(o.service);
  }
  // Current counts between flips: each check's latest result, when it is newer than the world's.
  // `?? []`: a heartbeat folded without parsing (a stored world replayed by tests, a bench) may predate the field.
  for (const c of e.checks ?? []) {
    let svc = (services ?? next.services)[c.service];
    const check = nextCheck(svc, c);
    if (!check) continue;
    services ??= { ...next.services };
    own ??= new Set();
    ownChecks ??= new Set();
    if (!svc) {
      svc = unknownService(c, e.id);
      own.add(c.service);
      ownChecks.add(c.service);
    } else if (!own.has(c.service)) {
      svc = { ...svc };
      own.add(c.service);
    }
    if (!ownChecks.has(c.service)) {
      svc.checks = { ...svc.checks };
      ownChecks.add(c.service);
    }
    svc.checks[c.check] = check;
    services[c.service] = svc;
  }
  return services ? { ...next, services } : next;
}

export interface StaleOptions {
  /** Heartbeat intervals without a heartbeat after which a node is stale (3). */
  missedHeartbeats: number;
}

/** Newest event time known for a node: its last heartbeat, or (before its first heartbeat) anything it reported. */
export function nodeLastSeen(node: NodeState): number | null {
  if (node.last_heartbeat !== null) return ms(node.last_heartbeat);
  const times: number[] = [];
  if (node.host) times.push(ms(node.host.at));
  for (const s of Object.values(node.services)) {
    if (s.updated_at !== NEVER) times.push(ms(s.updated_at));
    for (const c of Object.values(s.checks)) times.push(ms(c.at));
  }
  return times.length ? Math.max(...times) : null;
}

/**
 * Marks nodes whose heartbeats stopped as `stale` and their services `unknown` (we do not know, which is not missing).
 * Pure: `now` is passed in. Returns `world` itself when nothing changed, so callers can tell by identity.
 * The last known state stays readable in each service's `detail`; a later heartbeat restates the services.
 */
export function markStale(world: WorldState, now: Date, opts: StaleOptions): WorldState {
  let nodes: Record<string, NodeState> | undefined;
  for (const [name, node] of Object.entries(world.nodes)) {
    if (node.status === "stale") continue;
    const seen = nodeLastSeen(node);
    if (seen === null) continue;
    if (now.getTime() - seen <= opts.missedHeartbeats * node.heartbeat_interval_ms) continue;
    const since = now.toISOString();
    const lastSeen = new Date(seen).toISOString();
    const services: Record<string, ServiceState> = {};
    for (const [sname, s] of Object.entries(node.services)) {
      const known = s.state === "unknown" ? (s.detail ?? "unknown") : `${s.state}/${s.health} since ${s.since}`;
      services[sname] = {
        ...s,
        state: "unknown",
        health: "unknown",
        since: s.state === "unknown" ? s.since : since,
        detail: s.state === "unknown" ? known : `node stale (no heartbeat since ${lastSeen}); last known: ${known}`,
      };
    }
    nodes ??= { ...world.nodes };
    nodes[name] = { ...node, status: "stale", services };
  }
  return nodes ? { ...world, nodes } : world;
}

import type { NodeState, ServiceState } from "@steward/contracts/world-state";

type CheckState = ServiceState["checks"][string];

/**
 * Liveness writes, as Kubernetes keeps node heartbeats apart from node status: most node changes are a heartbeat
 * restating what the record already says (a new `last_heartbeat`, each service's `updated_at`, each check's `at`,
 * host figures, the node's recent event ids). At 1,000 nodes they are 200+ whole-record writes a second that tell a
 * reader nothing new; the observer's own stale judgement does not read them (it holds the world in memory). So a
 * write may leave such a node for later, within a budget, while every real change is written at once.
 *
 * Pure: the writer (world-store.ts) decides with these, then writes.
 */

/** Whether two checks differ only in when they were last sampled. */
function sameCheck(a: CheckState, b: CheckState): boolean {
  return a === b || (a.ok === b.ok && a.consecutive_failures === b.consecutive_failures && a.detail === b.detail);
}

/** Fields of a service a restatement may move; any other difference is a change. */
const SERVICE_LIVENESS = new Set<string>(["updated_at", "last_event_id", "traceparent", "checks"]);

function sameService(a: ServiceState, b: ServiceState): boolean {
  if (a === b) return true;
  for (const k in a) if (!SERVICE_LIVENESS.has(k) && a[k as keyof ServiceState] !== b[k as keyof ServiceState]) return false;
  for (const k in b) if (!SERVICE_LIVENESS.has(k) && !(k in a)) return false;
  if (a.checks === b.checks) return true;
  const ka = Object.keys(a.checks);
  if (ka.length !== Object.keys(b.checks).length) return false;
  for (const c of ka) {
    const bc = b.checks[c];
    if (!bc || !sameCheck(a.checks[c] as CheckState, bc)) return false;
  }
  return true;
}

/**
 * True when `next` says nothing `written` does not, apart from liveness: the heartbeat and host figures, when each
 * service and check was last restated, and the recent event ids. Status, every observed field of every service, a
 * check's result, the repo and the secrets must be the same (the repo and secrets by identity: the fold replaces
 * them only for a new report, and such reports are rare enough to write).
 */
export function livenessOnly(written: NodeState, next: NodeState): boolean {
  if (written === next) return true;
  if (
    written.status !== next.status ||
    written.heartbeat_interval_ms !== next.heartbeat_interval_ms ||
    written.agent_started_at !== next.agent_started_at ||
    written.dropped_events !== next.dropped_events ||
    written.repo !== next.repo ||
    written.secrets !== next.secrets
  ) {
    return false;
  }
  if (written.services === next.services) return true;
  const names = Object.keys(written.services);
  if (names.length !== Object.keys(next.services).length) return false;
  for (const name of names) {
    const n = next.services[name];
    if (!n || !sameService(written.services[name] as ServiceState, n)) return false;
  }
  return true;
}

export interface LivenessBudget {
  /** Liveness-only node writes per second, on average; beyond it the least recently written go first. */
  writesPerSecond: number;
  /** No node's liveness goes unwritten longer than this, whatever the budget. */
  maxAgeMs: number;
}

export interface LivenessCandidate {
  name: string;
  /** When this node's record was last written (ms). */
  writtenAt: number;
}

/**
 * Which liveness-only nodes to write now: every one written `maxAgeMs` ago or more, then the least recently written
 * up to `tokens` more. The rest wait for a later write. Returns names, oldest first.
 */
export function chooseLivenessWrites(candidates: readonly LivenessCandidate[], now: number, tokens: number, maxAgeMs: number): string[] {
  const sorted = [...candidates].sort((a, b) => a.writtenAt - b.writtenAt || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  let left = Math.max(0, Math.floor(tokens));
  for (const c of sorted) {
    if (now - c.writtenAt >= maxAgeMs) out.push(c.name);
    else if (left > 0) {
      out.push(c.name);
      left--;
    } else break;
  }
  return out;
}

/**
 * The first stream sequence folded into `next` that `written` does not hold: the node's records list the sequences of
 * their newest events in stream order. Undefined when `next` lists nothing newer (nothing of it is unwritten). Null
 * when `next`'s list no longer reaches back to the newest message `written` holds (more messages came for the node
 * than the list keeps, or `written` lists none): the first unwritten one is unknown, so the node cannot wait, since
 * the header could then claim a message no record holds.
 */
export function firstUnwrittenSeq(written: NodeState, next: NodeState): number | undefined | null {
  const done = written.recent_event_seqs?.at(-1);
  const seqs = next.recent_event_seqs ?? [];
  const at = done === undefined ? -1 : seqs.lastIndexOf(done);
  if (at < 0) return null;
  return seqs[at + 1];
}

/** Where a world stood after a stream sequence: what the header says when the store holds the world up to it. */
export interface WorldPosition {
  last_seq: number;
  events_applied: number;
  event_time: string | null;
}

/**
 * The world's counters after each message, kept by the observer for the writer: when some nodes' liveness waits, the
 * header may only claim the stream up to the first message a waiting node has not had written, and must give the
 * counters as they were there (an observer resuming from the header folds the rest again, and counts it again).
 */
export interface PositionLog {
  /** After each message processed (folded or skipped), in stream order. */
  record(p: WorldPosition): void;
  /** The position after the newest message at or below `seq`; undefined if the log does not reach back that far. */
  at(seq: number): WorldPosition | undefined;
  /** Forgets positions before the newest one at or below `seq` (that one is kept: `at(seq)` still answers). */
  trimTo(seq: number): void;
  /** Forgets everything and starts again from `p` (a world loaded or replaced). */
  reset(p: WorldPosition): void;
  size(): number;
}

export function createPositionLog(start: WorldPosition): PositionLog {
  let seqs: number[] = [start.last_seq];
  let applied: number[] = [start.events_applied];
  let times: (string | null)[] = [start.event_time];
  let head = 0;

  /** Index of the newest entry with seq <= `seq`, or -1. */
  function find(seq: number): number {
    let lo = head;
    let hi = seqs.length - 1;
    if (hi < lo || (seqs[lo] as number) > seq) return -1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((seqs[mid] as number) <= seq) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  return {
    record(p) {
      if (seqs.length > head && (seqs[seqs.length - 1] as number) >= p.last_seq) return;
      seqs.push(p.last_seq);
      applied.push(p.events_applied);
      times.push(p.event_time);
    },
    at(seq) {
      const i = find(seq);
      return i < 0 ? undefined : { last_seq: seq, events_applied: applied[i] as number, event_time: times[i] ?? null };
    },
    trimTo(seq) {
      const i = find(seq);
      if (i <= head) return;
      head = i;
      // Compact now and then, not on every trim: the arrays are the observer's hot path.
      if (head > 4096 && head * 2 > seqs.length) {
        seqs = seqs.slice(head);
        applied = applied.slice(head);
        times = times.slice(head);
        head = 0;
      }
    },
    reset(p) {
      seqs = [p.last_seq];
      applied = [p.events_applied];
      times = [p.event_time];
      head = 0;
    },
    size: () => seqs.length - head,
  };
}

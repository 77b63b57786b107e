/**
 * Where the observer is in the events stream: what the stale check needs to tell "this node's heartbeats stopped" from
 * "this observer has not folded them yet".
 */
export interface StreamPosition {
  /** When the last message the observer processed entered the stream (ms since the epoch); undefined before the first. */
  streamTimeMs: number | undefined;
  /** Messages the stream still held for the observer when that one was delivered (0: it was the newest). */
  pending: number;
  /** When (observer clock, ms) that message was processed, or the consumer was made: how fresh this position is. */
  processedAtMs: number;
}

/**
 * The time the stale check judges a node's silence against, or undefined when it must not judge at all.
 * - Caught up (nothing pending): the wall clock, so heartbeats that stopped are noticed on time.
 * - Behind (after a restart, a takeover or an overload): the time the last folded message entered the stream. A
 *   heartbeat still waiting in the stream is not a heartbeat that stopped; judged against the wall clock, every node
 *   whose newer heartbeats were not folded yet was marked stale, and the whole fleet flapped stale → up while the
 *   observer caught up (a false fleet-wide outage for the supervisor and the alerter).
 * - Behind with nothing folded yet: no judgement until the first message is.
 * - Behind but making no progress for `stuckMs` (the consumer is stuck, not catching up): the wall clock again. The
 *   observer does not know what the agents said since, and the fleet going stale is then the honest signal.
 * Never later than `now`: the server's clock may run ahead of the observer's.
 */
export function staleCheckTime(now: Date, position: StreamPosition, stuckMs: number): Date | undefined {
  if (position.pending <= 0) return now;
  if (now.getTime() - position.processedAtMs > stuckMs) return now;
  if (position.streamTimeMs === undefined) return undefined;
  return position.streamTimeMs < now.getTime() ? new Date(position.streamTimeMs) : now;
}

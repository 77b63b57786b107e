import type { NodeState, Snapshot } from "@steward/contracts/world-state";

/**
 * Whether what the world shows of `node` includes the stream up to `seq`: the header says the whole world does, or
 * the node's own record was written after folding one of its messages at or past `seq` (a node's messages fold in
 * stream order, so its record then holds every message of its own before that one). The second matters on a big
 * fleet, where the header may trail the records while some nodes' liveness waits to be written (libs/world liveness).
 */
export function foldedUpTo(snapshot: Snapshot, node: Pick<NodeState, "recent_event_seqs">, seq: number): boolean {
  return snapshot.world.last_seq >= seq || (node.recent_event_seqs?.at(-1) ?? 0) >= seq;
}

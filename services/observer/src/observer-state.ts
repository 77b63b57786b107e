import type { JsMsg } from "@nats-io/jetstream";
import type { WorldState } from "@steward/contracts/world-state";
import type { PositionLog } from "@steward/world/liveness";
import type { Logger } from "@steward/platform/logger";
import type { ObserverMetrics } from "./observer-metrics.js";
import type { StreamPosition } from "./stale-clock.js";

/** What the observer's parts (the consume loop, the world publisher, activation) share; one object, owned by createObserver. */
export interface ObserverState {
  /** The observer owns it (loaded or built here), so it folds in place: no copy of every node per event. */
  world: WorldState;
  /** True while not consuming: stopped, standing by, or handing over. */
  stopping: boolean;
  /** Newest message processed (folded, skipped or dead-lettered) and not yet acked; AckAll covers the ones before it. */
  unacked: JsMsg | undefined;
  /** Where the consume loop is in the stream, for the stale check (set at activation, moved by every message). */
  position: StreamPosition;
  /** The world's counters after each message, so a write that leaves some nodes' liveness for later can say where its header stands. */
  positions: PositionLog;
}

export function safeAck(m: JsMsg, logger: Logger): void {
  try {
    m.ack();
  } catch (err) {
    logger.warn({ err: (err as Error).message, seq: m.seq }, "ack failed; the message will be redelivered and skipped");
  }
}

export function updateNodeGauges(world: WorldState, metrics: ObserverMetrics): void {
  let up = 0;
  let stale = 0;
  for (const n of Object.values(world.nodes)) {
    if (n.status === "up") up++;
    else stale++;
  }
  metrics.nodes.set({ status: "up" }, up);
  metrics.nodes.set({ status: "stale" }, stale);
}

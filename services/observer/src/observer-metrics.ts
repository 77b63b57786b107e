import { Counter, Gauge, Histogram, type Registry } from "@steward/platform/metrics";

export interface ObserverMetrics {
  folded: Counter<"type">;
  deadLettered: Counter<"reason">;
  snapshotsWritten: Counter;
  snapshotWriteErrors: Counter<"store">;
  snapshotWriteSeconds: Histogram;
  lastSeq: Gauge;
  nodes: Gauge<"status">;
  foldLagSeconds: Histogram;
}

export function createObserverMetrics(registry: Registry): ObserverMetrics {
  const registers = [registry];
  return {
    folded: new Counter({ name: "observer_events_folded_total", help: "Events folded into the world, by event type", labelNames: ["type"], registers }),
    deadLettered: new Counter({ name: "observer_events_dead_lettered_total", help: "Messages sent to the dead-letter stream instead of being folded, by reason", labelNames: ["reason"], registers }),
    snapshotsWritten: new Counter({ name: "observer_snapshots_written_total", help: "World snapshots written (file and KV)", registers }),
    snapshotWriteErrors: new Counter({ name: "observer_snapshot_write_errors_total", help: "Failed snapshot writes, by store", labelNames: ["store"], registers }),
    snapshotWriteSeconds: new Histogram({
      name: "observer_snapshot_write_seconds",
      help: "Time to write one snapshot (file fsync + rename + KV put)",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    lastSeq: new Gauge({ name: "observer_last_seq", help: "Last stream sequence folded into the world", registers }),
    nodes: new Gauge({ name: "observer_nodes", help: "Nodes in the world, by status", labelNames: ["status"], registers }),
    foldLagSeconds: new Histogram({
      name: "observer_fold_lag_seconds",
      help: "Time from an event entering JetStream to being folded",
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    }),
  };
}

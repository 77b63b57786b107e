import { Counter, Gauge, Histogram, type Registry } from "@steward/platform/metrics";

export interface ObserverMetrics {
  folded: Counter<"type">;
  deadLettered: Counter<"reason">;
  snapshotsWritten: Counter;
  nodesWritten: Counter;
  nodesDeferred: Gauge;
  fileSnapshotsWritten: Counter;
  fileIntervalSeconds: Gauge;
  snapshotWriteErrors: Counter<"store">;
  snapshotWriteSeconds: Histogram;
  lastSeq: Gauge;
  active: Gauge;
  nodes: Gauge<"status">;
  foldLagSeconds: Histogram;
}

export function createObserverMetrics(registry: Registry): ObserverMetrics {
  const registers = [registry];
  return {
    folded: new Counter({ name: "steward_observer_events_folded_total", help: "Events folded into the world, by event type", labelNames: ["type"], registers }),
    deadLettered: new Counter({ name: "steward_observer_events_dead_lettered_total", help: "Messages sent to the dead-letter stream instead of being folded, by reason", labelNames: ["reason"], registers }),
    snapshotsWritten: new Counter({ name: "steward_observer_snapshots_written_total", help: "Writes to the world store (changed node records, then the header)", registers }),
    nodesDeferred: new Gauge({ name: "steward_observer_world_nodes_deferred", help: "Nodes whose liveness-only change the last world write left for later (LIVENESS_WRITES_PER_S)", registers }),
    nodesWritten: new Counter({ name: "steward_observer_world_nodes_written_total", help: "Node records written to the world store (only nodes that changed)", registers }),
    fileSnapshotsWritten: new Counter({ name: "steward_observer_snapshot_files_written_total", help: "Whole-world snapshot files written (the observer's resume point)", registers }),
    fileIntervalSeconds: new Gauge({ name: "steward_observer_snapshot_file_interval_seconds", help: "Current interval between snapshot files, adapted to what one costs", registers }),
    snapshotWriteErrors: new Counter({ name: "steward_observer_snapshot_write_errors_total", help: "Failed writes, by store (kv, kv_oversized, file)", labelNames: ["store"], registers }),
    snapshotWriteSeconds: new Histogram({
      name: "steward_observer_snapshot_write_seconds",
      help: "Time to write the changed nodes and the header to the world store",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    active: new Gauge({ name: "steward_observer_active", help: "1 while this observer is the active one (folds and writes the world store); 0 while it stands by", registers }),
    lastSeq: new Gauge({ name: "steward_observer_last_seq", help: "Last stream sequence folded into the world", registers }),
    nodes: new Gauge({ name: "steward_observer_nodes", help: "Nodes in the world, by status", labelNames: ["status"], registers }),
    foldLagSeconds: new Histogram({
      name: "steward_observer_fold_lag_seconds",
      help: "Time from an event entering JetStream to being folded",
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    }),
  };
}

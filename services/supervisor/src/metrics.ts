import { Counter, Gauge, Histogram, type Registry } from "@steward/platform/metrics";
import { RECOVERY_ACTION_KINDS } from "@steward/contracts/action";

export interface SupervisorMetrics {
  cycles: Counter<"result">;
  skipped: Counter<"reason">;
  drift: Gauge<"kind">;
  proposed: Counter<"kind">;
  expired: Counter;
  isLeader: Gauge;
  lastCycle: Gauge;
  diffSeconds: Histogram;
  nodesDiffed: Counter<"cycle">;
  cycleSeconds: Histogram;
  specParses: Counter<"result">;
  reportWriteFailures: Counter;
}

export function createSupervisorMetrics(registry: Registry): SupervisorMetrics {
  const registers = [registry];
  const m: SupervisorMetrics = {
    cycles: new Counter({ name: "steward_supervisor_cycles_total", help: "Supervisor cycles by result (ok, skipped, standby, error)", labelNames: ["result"], registers }),
    skipped: new Counter({ name: "steward_supervisor_cycles_skipped_total", help: "Cycles skipped because the spec or snapshot could not be read or parsed", labelNames: ["reason"], registers }),
    drift: new Gauge({ name: "steward_supervisor_drift", help: "Current drift findings by kind (last good cycle)", labelNames: ["kind"], registers }),
    proposed: new Counter({ name: "steward_supervisor_actions_proposed_total", help: "Pending actions proposed, by action kind", labelNames: ["kind"], registers }),
    expired: new Counter({ name: "steward_supervisor_actions_expired_total", help: "Pending actions expired because their drift cleared", registers }),
    isLeader: new Gauge({ name: "steward_supervisor_is_leader", help: "1 while this supervisor holds the leader lock", registers }),
    lastCycle: new Gauge({ name: "steward_supervisor_last_good_cycle_timestamp_seconds", help: "Unix time of the last completed (not skipped) cycle, for dead-man alerts", registers }),
    diffSeconds: new Histogram({ name: "steward_supervisor_diff_seconds", help: "Time to compute drift", buckets: [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5], registers }),
    nodesDiffed: new Counter({ name: "steward_supervisor_nodes_diffed_total", help: "Nodes diffed, by cycle: full (every node) or changes (only the nodes the world store reported changed)", labelNames: ["cycle"], registers }),
    cycleSeconds: new Histogram({
      name: "steward_supervisor_cycle_seconds",
      help: "A whole evaluated cycle: spec (read, parsed only when changed), world, actions queries, diff, proposals, report write",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    specParses: new Counter({ name: "steward_supervisor_spec_parses_total", help: "Fleet spec parses (only when its content hash changed), by result", labelNames: ["result"], registers }),
    reportWriteFailures: new Counter({ name: "steward_supervisor_report_write_failures_total", help: "Drift reports that could not be written to KV", registers }),
  };
  // Zero series exist from the start, so rate() and absence alerts work before the first proposal.
  for (const kind of RECOVERY_ACTION_KINDS) m.proposed.inc({ kind }, 0);
  return m;
}

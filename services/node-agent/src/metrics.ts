import { Counter, Gauge, Histogram, type Registry } from "@steward/platform/metrics";

export interface AgentMetrics {
  eventsPublished: Counter<"type">;
  eventsDuplicate: Counter<"type">;
  publishFailures: Counter;
  backlogSize: Gauge;
  inFlight: Gauge;
  eventsDropped: Counter;
  commands: Counter<"op" | "result">;
  commandDuration: Histogram<"op">;
  healthChecks: Counter<"service" | "check" | "result">;
  processStarts: Counter<"service">;
  processExits: Counter<"service">;
  specReloads: Counter<"result">;
}

export function createAgentMetrics(registry: Registry): AgentMetrics {
  const registers = [registry];
  return {
    eventsPublished: new Counter({ name: "steward_node_agent_events_published_total", help: "Events acknowledged by JetStream, by event type", labelNames: ["type"], registers }),
    eventsDuplicate: new Counter({ name: "steward_node_agent_events_duplicate_total", help: "Re-sent events JetStream recognised by Nats-Msg-Id and did not store again", labelNames: ["type"], registers }),
    publishFailures: new Counter({ name: "steward_node_agent_publish_failures_total", help: "JetStream publishes that failed or timed out (the event is retried)", registers }),
    backlogSize: new Gauge({ name: "steward_node_agent_backlog_size", help: "Events waiting to be published", registers }),
    inFlight: new Gauge({ name: "steward_node_agent_publish_in_flight", help: "Publishes awaiting their JetStream ack", registers }),
    eventsDropped: new Counter({ name: "steward_node_agent_events_dropped_total", help: "Events dropped (oldest first) because the backlog was full", registers }),
    commands: new Counter({ name: "steward_node_agent_commands_total", help: "Node commands by op and result (ok or the rejection code)", labelNames: ["op", "result"], registers }),
    commandDuration: new Histogram({ name: "steward_node_agent_command_duration_seconds", help: "Time to execute a node command", labelNames: ["op"], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers }),
    healthChecks: new Counter({ name: "steward_node_agent_health_checks_total", help: "Health check runs by result", labelNames: ["service", "check", "result"], registers }),
    processStarts: new Counter({ name: "steward_node_agent_process_starts_total", help: "Supervised process starts", labelNames: ["service"], registers }),
    processExits: new Counter({ name: "steward_node_agent_process_exits_total", help: "Supervised process exits (including stops)", labelNames: ["service"], registers }),
    specReloads: new Counter({ name: "steward_node_agent_spec_reloads_total", help: "Fleet spec reloads by result", labelNames: ["result"], registers }),
  };
}

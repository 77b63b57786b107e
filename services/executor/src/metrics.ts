import { Counter, Histogram, scrapeTimeGauge, type Registry } from "@steward/platform/metrics";
import type { ActionsRepository } from "@steward/actions/repository";

export interface ExecutorMetrics {
  commandSeconds: Histogram<"kind" | "outcome">;
  actionsTotal: Counter<"kind" | "result">;
  invalidReplies: Counter;
  swept: Counter<"to">;
  apiRequests: Counter<"route" | "status">;
  claimPolls: Counter;
  verifyReads: Counter<"kind">;
}

export function createExecutorMetrics(registry: Registry, store: Pick<ActionsRepository, "countByState">): ExecutorMetrics {
  scrapeTimeGauge(registry, { name: "steward_executor_actions", help: "Actions by state (from Postgres, at scrape time)", label: "state", read: () => store.countByState() });
  const registers = [registry];
  return {
    commandSeconds: new Histogram({ name: "steward_executor_command_seconds", help: "Time from sending a node command to its reply (or failure)", labelNames: ["kind", "outcome"], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers }),
    actionsTotal: new Counter({ name: "steward_executor_actions_total", help: "Actions this executor finished, by kind and result", labelNames: ["kind", "result"], registers }),
    invalidReplies: new Counter({ name: "steward_executor_invalid_replies_total", help: "Node command replies that failed schema validation", registers }),
    swept: new Counter({ name: "steward_executor_swept_total", help: "Actions moved by the sweeper (expired, or failed_unknown after a lost executor)", labelNames: ["to"], registers }),
    apiRequests: new Counter({ name: "steward_executor_api_requests_total", help: "HTTP API requests by route and status", labelNames: ["route", "status"], registers }),
    verifyReads: new Counter({ name: "steward_executor_verify_reads_total", help: "World snapshot reads while verifying a command's effect (single actions and each rollout node)", labelNames: ["kind"], registers }),
    claimPolls: new Counter({ name: "steward_executor_claim_polls_total", help: "Times the worker asked Postgres for approved work (one per idle cycle, and after each claim)", registers }),
  };
}

/**
 * The preamble of the end-to-end tests on one node of plain processes (holds-e2e, verify-settle,
 * verify-follows-world): a fleet whose services run `node -e SCRIPT` and break once their marker file exists, a stack
 * with observer, supervisor, executor and a real node-agent, and the executor API calls those tests make.
 */
import { join } from "node:path";
import { afterAll, beforeAll } from "vitest";
import { FINISHED_ACTION_STATES } from "@steward/contracts/action";
import type { NodeAgent } from "@steward/node-agent";
import { waitFor } from "@steward/testkit";
import { startStack, type Env, type Stack } from "./stack.js";

/** One health check as fleet.yaml spells it (`type` first). */
export type Check = { type: string } & Record<string, string | number>;

export interface ProcessService {
  /** The script `node -e` runs; `marker` is the path of its marker file as a JavaScript string literal. */
  script: (marker: string) => string;
  health?: readonly Check[];
}

export interface ProcessNodeOptions {
  node: string;
  /** A function is called in beforeAll, after the file's own earlier hooks (free ports, say). */
  services: Record<string, ProcessService> | (() => Record<string, ProcessService>);
  supervisor: Env;
  executor?: Env;
}

/** The stack and the node's agent, there from the test file's beforeAll on. */
export interface ProcessNode {
  readonly stack: Stack;
  readonly agent: NodeAgent;
  /** The file whose existence breaks `service` (the test writes or removes it). */
  marker(service: string): string;
}

function fleetYaml(node: string, services: Record<string, ProcessService>, dir: string): string {
  const lines = ["version: 1", "nodes:", `  ${node}:`, "    services:"];
  for (const [name, s] of Object.entries(services)) {
    const script = s.script(JSON.stringify(join(dir, `${name}.broken`)));
    lines.push(`      ${name}:`, "        kind: process", `        command: [${JSON.stringify(process.execPath)}, "-e", ${JSON.stringify(script)}]`);
    if (s.health?.length) lines.push("        health:");
    for (const check of s.health ?? []) Object.entries(check).forEach(([k, v], i) => lines.push(`${i === 0 ? "          - " : "            "}${k}: ${v}`));
  }
  return [...lines, ""].join("\n");
}

/** Registers the file's hooks: the stack starts before its tests (agent heartbeat 500 ms) and stops after them. */
export function useProcessNode(o: ProcessNodeOptions): ProcessNode {
  let stack: Stack | undefined;
  beforeAll(async () => {
    stack = await startStack({
      fleet: (dir) => fleetYaml(o.node, typeof o.services === "function" ? o.services() : o.services, dir),
      observer: true,
      supervisor: o.supervisor,
      executor: o.executor ?? true,
      agents: { [o.node]: { HEARTBEAT_MS: "500" } },
    });
  }, 120_000);
  afterAll(async () => {
    await stack?.stop();
  });
  const started = (): Stack => {
    if (!stack) throw new Error("the stack starts in beforeAll");
    return stack;
  };
  return {
    get stack() {
      return started();
    },
    get agent() {
      return started().agents[o.node]!;
    },
    marker: (service) => join(started().dir, `${service}.broken`),
  };
}

export type ActionView = { id: string; kind: string; service: string; state: string; result: string | null };

/** A call to the executor's API with the stack's token. */
export async function api(stack: Stack, path: string, init: RequestInit = {}): Promise<Record<string, unknown>> {
  const r = await fetch(stack.executorUrl + path, { ...init, headers: { authorization: `Bearer ${stack.token}`, "content-type": "application/json" }, signal: AbortSignal.timeout(20_000) });
  return (await r.json()) as Record<string, unknown>;
}

/** The supervisor's pending restart of `service`, once it is proposed. */
export const pendingRestart = (stack: Stack, service: string): Promise<ActionView> =>
  waitFor(`a pending restart of ${service}`, async () => ((await api(stack, "/api/actions?state=pending"))["actions"] as ActionView[]).find((a) => a.service === service && a.kind === "restart"), 30_000, 100);

/** Approves the action through the API and waits for it to end; `ms` counts from the approval. */
export async function approveAndWait(stack: Stack, id: string, timeoutMs: number): Promise<{ action: ActionView; ms: number }> {
  const approvedAt = Date.now();
  await api(stack, `/api/actions/${id}/approve`, { method: "POST", body: JSON.stringify({ actor: "tester", channel: "api" }) });
  const action = await waitFor(`action ${id} to end`, async () => {
    const a = (await api(stack, `/api/actions/${id}`))["action"] as ActionView;
    return (FINISHED_ACTION_STATES as readonly string[]).includes(a.state) && a;
  }, timeoutMs, 100);
  return { action, ms: Date.now() - approvedAt };
}

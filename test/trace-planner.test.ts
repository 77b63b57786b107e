/**
 * One trace from `steward task add` to the node-agent command that carried out the planner's proposal:
 * cli.task_add → planner.inbox → planner.queue.enqueue → planner.worker.run → (evidence, the model calls, a tool call)
 * → planner.propose_action → executor.run → executor.command → node-agent.command.
 * Every component runs in this process (the CLI through runCli), so an in-memory exporter sees every span.
 * The supervisor is left out on purpose: it would propose the same restart first, and the action would then
 * carry the supervisor's trace instead of the CLI's.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { initTracing } from "@steward/platform/tracing";
import { TaskDetail } from "@steward/contracts/task";
import type { NodeAgent } from "@steward/node-agent";
import { runCli } from "@steward/cli";
import { freePort, startFakeOllama, waitFor, type FakeOllama } from "@steward/testkit";
import { startStack, type Stack } from "./support/stack.js";

const exporter = new InMemorySpanExporter();
const tracing = initTracing({ component: "steward-trace-planner-test", exporter });

let stack: Stack;
let ollama: FakeOllama;
let token = "";
let apiUrl = "";
let plannerUrl = "";
let agent: NodeAgent;

beforeAll(async () => {
  ollama = await startFakeOllama();
  const port = await freePort();
  stack = await startStack({
    fleet: `version: 1\nnodes:\n  t1:\n    services:\n      web:\n        kind: process\n        command: [${JSON.stringify(process.execPath)}, "-e", "require('http').createServer((q,s)=>s.end('ok')).listen(${port}, '127.0.0.1')"]\n        health:\n          - type: http\n            url: http://127.0.0.1:${port}/\n            interval: 300ms\n            retries: 1\n            start_period: 60s\n`,
    observer: true,
    executor: { VERIFY_TIMEOUT_MS: "20000" },
    agents: { t1: { HEARTBEAT_MS: "500" } },
    planner: { OLLAMA_URL: ollama.url, CLAUDE_ENABLED: "false", WORKERS: "1", POLL_MS: "50" },
  });
  ({ token, executorUrl: apiUrl, plannerUrl } = stack);
  agent = stack.agents["t1"]!;
});

afterAll(async () => {
  await stack?.stop();
  await ollama?.close();
  await tracing.shutdown();
});

describe("trace context from the CLI through the planner", () => {
  it("steward task add → planner → proposed action → executor → node-agent is one trace with no orphan span", async () => {
    await waitFor("web healthy", () => agent.status().find((x) => x.service === "web")?.health === "healthy", 20_000);
    // The model first reads the service's events through a tool (its own span), then answers.
    ollama.script({ toolCalls: [{ name: "service_events", arguments: { node: "t1", service: "web" } }] });
    ollama.script({ content: JSON.stringify({ diagnosis: "web serves stale data since its config changed", answer: "Restart web on t1.", proposals: [{ kind: "restart", node: "t1", service: "web", reason: "reload the changed config" }] }), promptEvalCount: 900, evalCount: 60 });
    exporter.reset();

    const out: string[] = [];
    const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(s), env: { STEWARD_PLANNER_URL: plannerUrl, STEWARD_API_URL: apiUrl, STEWARD_TOKEN: token, STEWARD_USER: "tracer" } };
    expect(await runCli(["task", "add", "--json", "--timeout", "30", "why", "does", "t1/web", "serve", "stale", "data?", "restart", "it", "if", "that", "helps"], io), out.join("\n")).toBe(0);
    const detail = TaskDetail.parse(JSON.parse(out.filter((l) => l.startsWith("{")).at(-1)!));
    const proposal = detail.proposals.find((p) => p.accepted && p.action_id);
    expect(proposal, JSON.stringify(detail.proposals)).toBeDefined();
    const actionId = proposal!.action_id!;

    expect(await runCli(["approve", actionId.slice(0, 8)], io), out.join("\n")).toBe(0);
    await waitFor("action succeeded", async () => {
      const r = await fetch(`${apiUrl}/api/actions/${actionId}`, { headers: { authorization: `Bearer ${token}` } });
      const state = ((await r.json()) as { action: { state: string } }).action.state;
      if (state === "failed" || state === "failed_unknown") throw new Error(`action ${state}`);
      return state === "succeeded";
    }, 30_000, 100);

    const root = exporter.getFinishedSpans().find((s) => s.name === "cli.task_add");
    expect(root).toBeDefined();
    const traceId = root!.spanContext().traceId;
    const spans: ReadableSpan[] = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    const names = new Set(spans.map((s) => s.name));
    for (const n of ["cli.task_add", "planner.inbox", "planner.queue.enqueue", "planner.worker.run", "chat llama3.1:8b", "execute_tool service_events", "planner.propose_action", "executor.run", "executor.command", "node-agent.command"]) {
      expect(names, `span ${n} in the trace; got ${[...names].join(", ")}`).toContain(n);
    }
    const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
    const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
    // Exactly one root (the CLI); every other span's parent was exported in the same trace.
    expect(spans.filter((s) => !parentOf(s)).map((s) => s.name)).toEqual(["cli.task_add"]);
    for (const s of spans) {
      const p = parentOf(s);
      if (p) expect(byId.has(p), `parent of ${s.name} is exported`).toBe(true);
    }
    const chain = (name: string): string[] => {
      const path: string[] = [];
      let s = spans.find((x) => x.name === name);
      while (s) {
        path.unshift(s.name);
        const p = parentOf(s);
        s = p ? byId.get(p) : undefined;
      }
      return path;
    };
    const cmd = chain("node-agent.command");
    const order = ["cli.task_add", "planner.inbox", "planner.queue.enqueue", "planner.worker.run", "planner.propose_action", "executor.run", "executor.command", "node-agent.command"];
    expect(cmd.filter((n) => order.includes(n))).toEqual(order);
    // The model call hangs off the worker, with the GenAI attributes.
    expect(chain("chat llama3.1:8b")).toContain("planner.worker.run");
    const call = spans.find((s) => s.name === "chat llama3.1:8b")!;
    expect(call.attributes["gen_ai.system"]).toBe("ollama");
    expect(call.attributes["gen_ai.usage.input_tokens"]).toBeGreaterThan(0);
    expect(spans.filter((s) => s.name === "chat llama3.1:8b").map((s) => s.attributes["gen_ai.usage.output_tokens"])).toContain(60);
    // The tool call hangs off the worker too, with the GenAI tool attributes; the model saw its answer.
    expect(chain("execute_tool service_events")).toContain("planner.worker.run");
    const tool = spans.find((s) => s.name === "execute_tool service_events")!;
    expect(tool.attributes).toMatchObject({ "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "service_events", "steward.tool.result": "ok" });
    expect(ollama.chats()[1]?.messages.some((m) => m.role === "tool" && m.content.includes("events_seen"))).toBe(true);
    expect(detail.steps.some((s) => s.kind === "tool" && s.message.startsWith('service_events {"node":"t1","service":"web"}: '))).toBe(true);
  });
});

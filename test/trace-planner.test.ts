/**
 * One trace from `steward task add` to the node-agent command that carried out the planner's proposal:
 * cli.task_add → planner.inbox → planner.queue.enqueue → planner.worker.run → (evidence, every model call, every tool
 * call, and the node-agent's answer to a log read) → planner.propose_action → executor.run → executor.command → node-agent.command.
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
  it("steward task add → planner (every model call, every tool call) → proposed action → executor → node-agent is one trace with no orphan span", async () => {
    await waitFor("web healthy", () => agent.status().find((x) => x.service === "web")?.health === "healthy", 20_000);
    // The model investigates over two rounds before it answers: first two calls in one turn (the service's events, and
    // its log, which the node-agent answers over NATS), then its spec. Three model calls, three tool calls.
    ollama.script(
      { toolCalls: [{ name: "service_events", arguments: { node: "t1", service: "web" } }, { name: "service_logs", arguments: { node: "t1", service: "web", tail: 20 } }] },
      { toolCalls: [{ name: "service_spec", arguments: { node: "t1", service: "web" } }] },
      { content: JSON.stringify({ diagnosis: "web serves stale data since its config changed", answer: "Restart web on t1.", proposals: [{ kind: "restart", node: "t1", service: "web", reason: "reload the changed config" }] }), promptEvalCount: 900, evalCount: 60 },
    );
    const chatsBefore = ollama.chats().length;
    exporter.reset();

    const out: string[] = [];
    const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(s), env: { STEWARD_PLANNER_URL: plannerUrl, STEWARD_API_URL: apiUrl, STEWARD_TOKEN: token, STEWARD_USER: "tracer" } };
    expect(await runCli(["task", "add", "--json", "--timeout", "30", "why", "does", "t1/web", "serve", "stale", "data?", "restart", "it", "if", "that", "helps"], io), out.join("\n")).toBe(0);
    const detail = TaskDetail.parse(JSON.parse(out.filter((l) => l.startsWith("{")).at(-1)!));
    const proposal = detail.proposals.find((p) => p.accepted && p.action_id);
    expect(proposal, JSON.stringify(detail.proposals)).toBeDefined();
    const actionId = proposal!.action_id!;
    const modelCalls = ollama.chats().length - chatsBefore;
    // The loop's tool calls (the gathering's own reads are "read …" steps, not model-asked calls).
    const toolSteps = detail.steps.filter((s) => s.kind === "tool" && !s.message.startsWith("read "));
    expect(modelCalls, JSON.stringify(detail.steps)).toBe(3);
    expect(toolSteps.map((s) => s.message.split(" ")[0])).toEqual(["service_events", "service_logs", "service_spec"]);

    expect(await runCli(["approve", actionId.slice(0, 8)], io), out.join("\n")).toBe(0);
    let traceparent: string | null = null;
    await waitFor("action succeeded", async () => {
      const r = await fetch(`${apiUrl}/api/actions/${actionId}`, { headers: { authorization: `Bearer ${token}` } });
      const action = ((await r.json()) as { action: { state: string; traceparent: string | null } }).action;
      if (action.state === "failed" || action.state === "failed_unknown") throw new Error(`action ${action.state}`);
      traceparent = action.traceparent;
      return action.state === "succeeded";
    }, 30_000, 100);

    const root = exporter.getFinishedSpans().find((s) => s.name === "cli.task_add");
    expect(root).toBeDefined();
    const traceId = root!.spanContext().traceId;
    // The action the planner proposed carries the CLI's trace.
    expect(traceparent, "the action's traceparent").toMatch(new RegExp(`^00-${traceId}-`));
    const inTrace = (): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    const count = (spans: ReadableSpan[], name: string) => spans.filter((s) => s.name === name).length;
    // What the trace must hold, with how many of each: every model call and every tool call made for the task.
    const expected: [string, number][] = [
      ["cli.task_add", 1], ["planner.inbox", 1], ["planner.queue.enqueue", 1], ["planner.worker.run", 1],
      ["chat llama3.1:8b", modelCalls], ["execute_tool service_events", 1], ["execute_tool service_logs", 1], ["execute_tool service_spec", 1],
      ["planner.propose_action", 1], ["executor.run", 1], ["executor.command", 1], ["node-agent.command", 1],
    ];
    // Spans end after the states they write are readable (executor.run after 'succeeded', worker.run after the task's
    // answer): wait until every expected span is exported, then check them.
    await waitFor("every span of the trace exported", () => {
      const spans = inTrace();
      return expected.every(([n, k]) => count(spans, n) >= k) && spans.some((s) => s.name === "node-agent.log_tail");
    }, 15_000, 50).catch(() => undefined);
    const spans = inTrace();
    const got = [...new Set(spans.map((s) => s.name))].map((n) => `${n} ×${count(spans, n)}`).join(", ");
    for (const [n, k] of expected) expect(count(spans, n), `${k} span(s) ${n} in the trace; got ${got}`).toBe(k);
    // Exactly as many execute_tool spans as tool steps of the task, and no other tool span.
    expect(spans.filter((s) => s.name.startsWith("execute_tool ")).length).toBe(toolSteps.length);

    const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
    const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
    // Exactly one root (the CLI); every other span's parent was exported in the same trace.
    expect(spans.filter((s) => !parentOf(s)).map((s) => s.name)).toEqual(["cli.task_add"]);
    for (const s of spans) {
      const p = parentOf(s);
      if (p) expect(byId.has(p), `parent of ${s.name} is exported`).toBe(true);
    }
    const chainOf = (span: ReadableSpan | undefined): string[] => {
      const path: string[] = [];
      let s = span;
      while (s) {
        path.unshift(s.name);
        const p = parentOf(s);
        s = p ? byId.get(p) : undefined;
      }
      return path;
    };
    const chain = (name: string): string[] => chainOf(spans.find((x) => x.name === name));
    const cmd = chain("node-agent.command");
    const order = ["cli.task_add", "planner.inbox", "planner.queue.enqueue", "planner.worker.run", "planner.propose_action", "executor.run", "executor.command", "node-agent.command"];
    expect(cmd.filter((n) => order.includes(n))).toEqual(order);
    const underWorker = ["cli.task_add", "planner.inbox", "planner.queue.enqueue", "planner.worker.run"];
    // Every model call hangs off the worker, with the GenAI attributes.
    const calls = spans.filter((s) => s.name === "chat llama3.1:8b");
    for (const call of calls) {
      expect(chainOf(call)).toEqual([...underWorker, "chat llama3.1:8b"]);
      expect(call.attributes["gen_ai.system"]).toBe("ollama");
      expect(call.attributes["gen_ai.usage.input_tokens"]).toBeGreaterThan(0);
    }
    expect(calls.map((s) => s.attributes["gen_ai.usage.output_tokens"])).toContain(60);
    // Every tool call hangs off the worker too, with the GenAI tool attributes and a call id of its own.
    const tools = spans.filter((s) => s.name.startsWith("execute_tool "));
    for (const tool of tools) {
      const name = tool.name.slice("execute_tool ".length);
      expect(chainOf(tool)).toEqual([...underWorker, tool.name]);
      expect(tool.attributes).toMatchObject({ "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "steward.tool.result": "ok", "steward.task_id": detail.task.id });
    }
    expect(new Set(tools.map((s) => s.attributes["gen_ai.tool.call.id"])).size).toBe(tools.length);
    // The node-agent's answer to the log read carries the tool call's context across NATS.
    const logReads = spans.filter((s) => s.name === "node-agent.log_tail").map(chainOf);
    expect(logReads, JSON.stringify(logReads)).toContainEqual([...underWorker, "execute_tool service_logs", "node-agent.log_tail"]);
    // The proposal hangs off the worker; the model saw each tool's answer.
    expect(chain("planner.propose_action")).toEqual([...underWorker, "planner.propose_action"]);
    const chats = ollama.chats().slice(chatsBefore);
    expect(chats[1]?.messages.some((m) => m.role === "tool" && m.content.includes("events_seen"))).toBe(true);
    expect(chats[2]?.messages.filter((m) => m.role === "tool").length).toBe(3);
    expect(toolSteps[0]!.message.startsWith('service_events {"node":"t1","service":"web"}: ')).toBe(true);
  });
});

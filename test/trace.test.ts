/**
 * One trace from the probe that saw a process die to the node-agent command that restarted it:
 * probe.exit → supervisor.propose → executor.run → executor.command → node-agent.command,
 * every component in this process so an in-memory exporter sees every span.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { initTracing } from "@steward/platform/tracing";
import type { NodeAgent } from "@steward/node-agent";
import { freePort, waitFor } from "@steward/testkit";
import { startStack, type Stack } from "./support/stack.js";

const exporter = new InMemorySpanExporter();
const tracing = initTracing({ component: "trace-test", exporter });

let stack: Stack;
let token = "";
let apiUrl = "";
let agent: NodeAgent;

beforeAll(async () => {
  const port = await freePort();
  stack = await startStack({
    fleet: `version: 1\nnodes:\n  t1:\n    services:\n      web:\n        kind: process\n        command: [${JSON.stringify(process.execPath)}, "-e", "require('http').createServer((q,s)=>s.end('ok')).listen(${port}, '127.0.0.1')"]\n        health:\n          - type: http\n            url: http://127.0.0.1:${port}/\n            interval: 300ms\n            retries: 1\n            start_period: 60s\n`,
    observer: true,
    supervisor: { RECHECK_MS: "1000" },
    executor: { VERIFY_TIMEOUT_MS: "20000" },
    agents: { t1: { HEARTBEAT_MS: "500" } },
  });
  ({ token, executorUrl: apiUrl } = stack);
  agent = stack.agents["t1"]!;
});

afterAll(async () => {
  await stack?.stop();
  await tracing.shutdown();
});

const api = async (path: string, init: RequestInit = {}) => {
  const r = await fetch(apiUrl + path, { ...init, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" } });
  return (await r.json()) as Record<string, unknown>;
};

describe("trace context end to end", () => {
  it("probe → observer → supervisor → executor → node-agent is one trace with no orphan span", async () => {
    const pid = await waitFor("web healthy", () => {
      const s = agent.status().find((x) => x.service === "web");
      return s?.health === "healthy" ? s.pid : undefined;
    }, 20_000);
    exporter.reset();
    process.kill(pid!, "SIGKILL");

    const action = await waitFor("pending restart", async () => {
      const r = await api("/api/actions?state=pending");
      return (r["actions"] as { id: string; kind: string; service: string; traceparent: string | null }[]).find((a) => a.service === "web" && a.kind === "restart");
    }, 15_000, 100);
    expect(action.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    await api(`/api/actions/${action.id}/approve`, { method: "POST", body: JSON.stringify({ actor: "tracer", channel: "api" }) });
    await waitFor("action succeeded", async () => {
      const r = await api(`/api/actions/${action.id}`);
      const state = (r["action"] as { state: string }).state;
      if (state === "failed" || state === "failed_unknown") throw new Error(`action ${state}`);
      return state === "succeeded";
    }, 30_000, 100);

    const traceId = action.traceparent!.split("-")[1]!;
    const expected = ["probe.exit", "observer.fold", "supervisor.propose", "executor.run", "executor.command", "node-agent.command"];
    const inTrace = () => exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    // executor.run ends after it has written "succeeded", so the state can be read
    // before the span is exported: wait for the spans, then check them.
    await waitFor("the action's spans exported", () => {
      const seen = new Set(inTrace().map((s) => s.name));
      return expected.every((n) => seen.has(n));
    }, 10_000, 50).catch(() => undefined);
    const spans: ReadableSpan[] = inTrace();
    const names = new Set(spans.map((s) => s.name));
    for (const n of expected) {
      expect(names, `span ${n} in the trace; got ${[...names].join(", ")}`).toContain(n);
    }
    const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
    const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
    // Exactly one root (the probe); every other span's parent is in the same trace.
    const roots = spans.filter((s) => !parentOf(s));
    expect(roots.map((s) => s.name)).toEqual(["probe.exit"]);
    for (const s of spans) {
      const p = parentOf(s);
      if (p) expect(byId.has(p), `parent of ${s.name} is exported`).toBe(true);
    }
    // The chain, parent by parent.
    const chain = (name: string): string[] => {
      const out: string[] = [];
      let s = spans.find((x) => x.name === name);
      while (s) {
        out.unshift(s.name);
        const p = parentOf(s);
        s = p ? byId.get(p) : undefined;
      }
      return out;
    };
    const cmdChain = chain("node-agent.command");
    expect(cmdChain[0]).toBe("probe.exit");
    expect(cmdChain.indexOf("supervisor.propose")).toBeGreaterThan(0);
    expect(cmdChain.indexOf("executor.run")).toBeGreaterThan(cmdChain.indexOf("supervisor.propose"));
    expect(cmdChain.indexOf("executor.command")).toBeGreaterThan(cmdChain.indexOf("executor.run"));
    expect(cmdChain.at(-1)).toBe("node-agent.command");
    expect(chain("observer.fold")[0]).toBe("probe.exit");
  });
});

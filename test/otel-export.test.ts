/**
 * OpenTelemetry configured the standard way: a real node-agent process, given only the OTEL_* variables, sends its
 * spans over OTLP/HTTP to a local receiver (an HTTP server taking the OTLP/HTTP JSON encoding, as a collector does),
 * with its resource attributes from the environment. A malformed variable stops it at start naming the variable.
 */
import { createServer, type Server } from "node:http";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "@steward/testkit";
import { startStack, type Stack } from "./support/stack.js";
import { spawnService, type ServiceProcess } from "./support/service-process.js";

interface Export {
  path: string;
  contentType: string;
  resource: Record<string, unknown>;
  spans: string[];
}

type AnyValue = { stringValue?: string; intValue?: number | string; boolValue?: boolean; doubleValue?: number };
interface OtlpJson {
  resourceSpans?: { resource?: { attributes?: { key: string; value: AnyValue }[] }; scopeSpans?: { spans?: { name: string }[] }[] }[];
}

const value = (v: AnyValue): unknown => v.stringValue ?? v.intValue ?? v.boolValue ?? v.doubleValue;

let receiver: Server;
let receiverUrl = "";
const received: Export[] = [];
let stack: Stack;
const agents: ServiceProcess[] = [];

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as OtlpJson;
      for (const rs of body.resourceSpans ?? []) {
        received.push({
          path: req.url ?? "",
          contentType: req.headers["content-type"] ?? "",
          resource: Object.fromEntries((rs.resource?.attributes ?? []).map((a) => [a.key, value(a.value)])),
          spans: (rs.scopeSpans ?? []).flatMap((s) => (s.spans ?? []).map((x) => x.name)),
        });
      }
      // An ExportTraceServiceResponse with nothing rejected.
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  receiver.listen(0, "127.0.0.1");
  await once(receiver, "listening");
  const a = receiver.address();
  receiverUrl = `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}`;
  stack = await startStack({ fleet: "version: 1\nnodes:\n  t1: {}\n  t2: {}\n  t3: {}\n", dbPrefix: "steward_otel", nodes: ["t1", "t2", "t3"] });
}, 60_000);

afterAll(async () => {
  for (const a of agents) if (a.child.exitCode === null) a.child.kill("SIGTERM");
  await Promise.all(agents.map((a) => (a.child.exitCode === null ? once(a.child, "exit") : undefined)));
  await stack?.stop();
  receiver?.close();
}, 60_000);

function agent(node: string, otel: Record<string, string>): ServiceProcess {
  const p = spawnService("node-agent", { NODE_NAME: node, NATS_URL: stack.nats.url, ...stack.natsEnv(`node.${node}`), FLEET_SPEC: stack.fleetPath, ...stack.agentKeys, HEARTBEAT_MS: "300", METRICS_PORT: "0", LOG_DIR: `${stack.dir}/logs-${node}`, STATE_DIR: `${stack.dir}/state-${node}`, ...otel });
  agents.push(p);
  return p;
}

const exportFrom = (serviceName: string, span: string) =>
  waitFor(`a ${span} span from ${serviceName} at the receiver`, () => received.find((e) => e.resource["service.name"] === serviceName && e.spans.includes(span)), 45_000, 100);

describe("OpenTelemetry from the standard variables", () => {
  it("OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_RESOURCE_ATTRIBUTES: spans reach the receiver at /v1/traces as steward-node-agent, with the attributes", async () => {
    const p = agent("t1", { OTEL_EXPORTER_OTLP_ENDPOINT: `${receiverUrl}/`, OTEL_RESOURCE_ATTRIBUTES: "deployment.environment.name=ci, steward.site=lab%2Cwest,host.name=t1" });
    const e = await exportFrom("steward-node-agent", "probe.heartbeat").catch((err: Error) => {
      throw new Error(`${err.message}; received ${JSON.stringify(received)}; agent said:\n${p.output.slice(-2000)}`);
    });
    expect(e.path).toBe("/v1/traces");
    expect(e.contentType).toContain("application/json");
    expect(e.resource).toMatchObject({ "service.name": "steward-node-agent", "service.namespace": "steward", "deployment.environment.name": "ci", "steward.site": "lab,west", "host.name": "t1" });
  });

  it("OTEL_SERVICE_NAME wins over the default and over service.name in the attributes; OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as given", async () => {
    const p = agent("t2", { OTEL_SERVICE_NAME: "edge-agent-t2", OTEL_RESOURCE_ATTRIBUTES: "service.name=ignored,team=ops", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiverUrl}/collector/traces` });
    const e = await exportFrom("edge-agent-t2", "probe.heartbeat").catch((err: Error) => {
      throw new Error(`${err.message}; agent said:\n${p.output.slice(-2000)}`);
    });
    expect(e.path).toBe("/collector/traces");
    expect(e.resource).toMatchObject({ "service.name": "edge-agent-t2", team: "ops" });
    expect(received.some((x) => x.resource["service.name"] === "ignored")).toBe(false);
  });

  it.each([
    ["OTEL_RESOURCE_ATTRIBUTES", "team=ops,broken", /OTEL_RESOURCE_ATTRIBUTES: entry 2 of 2 is not key=value/],
    ["OTEL_RESOURCE_ATTRIBUTES", "team=%E0%A4%A", /OTEL_RESOURCE_ATTRIBUTES: entry 1 of 1 has a broken percent-encoding/],
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318", /OTEL_EXPORTER_OTLP_ENDPOINT: must be an http\(s\) URL/],
    ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "not a url", /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: is not a URL/],
  ])("a malformed %s (%s) stops the service at start (exit 2) naming it", async (name, bad, message) => {
    const p = agent("t3", { OTEL_EXPORTER_OTLP_ENDPOINT: receiverUrl, [name]: bad });
    const [code] = (await once(p.child, "exit")) as [number | null];
    expect(code).toBe(2);
    expect(p.output).toMatch(message);
    expect(p.output).not.toContain(bad);
    expect(p.output).not.toContain("serving metrics");
  });
});

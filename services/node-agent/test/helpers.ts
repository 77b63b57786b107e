import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { EVENTS_STREAM, commandSubject } from "@steward/contracts/subjects";
import { NodeCommandReply, signNodeCommand, type NodeCommandBody } from "@steward/contracts/node-command";
import { newCommandKeyPair, type CommandSigningKey } from "@steward/contracts/command-keys";
import { NodeEvent } from "@steward/contracts/events";
import { jetstreamManager, traceHeaders, type MsgHdrs, type NatsConnection } from "@steward/platform/bus";
import type { NodeAgentConfig } from "../src/config.js";

export const FLEET_KEY = "test-fleet-key-0123456789abcdef";
/** The executor's command key pair of these tests: agents trust its public half. */
export const COMMAND_KEYS = newCommandKeyPair();

/** A tiny HTTP server: GET /health answers 200 until GET /fail is called, then 500. */
export const HTTP_SERVER_JS = [
  "const http=require('http');let ok=true;",
  "http.createServer((q,s)=>{",
  "if(q.url==='/fail'){ok=false;s.end('failing');return}",
  "if(q.url==='/health'){s.statusCode=ok?200:500;s.end();return}",
  "s.statusCode=404;s.end()",
  "}).listen(Number(process.env.PORT),'127.0.0.1',()=>console.log('listening on '+process.env.PORT));",
].join("");

export function httpService(port: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    kind: "process",
    command: [process.execPath, "-e", HTTP_SERVER_JS],
    env: { PORT: String(port) },
    health: [{ type: "http", url: `http://127.0.0.1:${port}/health`, interval: "200ms", timeout: "500ms", retries: 2 }],
    ...extra,
  };
}

export interface TempFleet {
  dir: string;
  file: string;
  write(services: Record<string, unknown>, node?: string): Promise<void>;
  cleanup(): Promise<void>;
}

/** fleet.yaml in a temp dir; written as JSON, which is YAML. */
export async function tempFleet(node: string): Promise<TempFleet> {
  const dir = await mkdtemp(join(tmpdir(), "steward-agent-test-"));
  const file = join(dir, "fleet.yaml");
  return {
    dir,
    file,
    async write(services, n = node) {
      await writeFile(file, JSON.stringify({ version: 1, nodes: { [n]: { services } } }, null, 2));
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

export function testConfig(node: string, fleet: TempFleet, natsUrl: string, over: Partial<NodeAgentConfig> = {}): NodeAgentConfig {
  return {
    nodeName: node,
    natsUrl,
    fleetSpec: fleet.file,
    fleetKey: FLEET_KEY,
    commandKeys: [COMMAND_KEYS.signing.publicKey],
    heartbeatMs: 500,
    hostProbeMs: 1000,
    specPollMs: 100,
    maxInFlight: 64,
    backlogMax: 1000,
    metricsPort: 0,
    metricsHost: "127.0.0.1",
    logDir: join(fleet.dir, "logs"),
    stopGraceMs: 2000,
    publishTimeoutMs: 1000,
    ...over,
  };
}

export interface Seen {
  event: NodeEvent;
  at: number;
  headers: MsgHdrs | undefined;
}

/** Every event published for a node, as core NATS subscribers see it (no stream needed). */
export function tapEvents(nc: NatsConnection, node: string): { events: Seen[]; stop(): void } {
  const events: Seen[] = [];
  const sub = nc.subscribe(`steward.events.${node}.>`, {
    callback: (_err, msg) => {
      if (!msg) return;
      events.push({ event: NodeEvent.parse(msg.json()), at: Date.now(), headers: msg.headers });
    },
  });
  return { events, stop: () => sub.unsubscribe() };
}

export function commandBody(node: string, op: NodeCommandBody["op"], service: string, over: Partial<NodeCommandBody> = {}): NodeCommandBody {
  const now = Date.now();
  return {
    id: `cmd-${randomUUID()}`,
    node,
    op,
    service,
    action_id: null,
    issued_at: new Date(now).toISOString(),
    expires_at: new Date(now + 60_000).toISOString(),
    ...over,
  };
}

export async function requestRaw(nc: NatsConnection, node: string, payload: string, headers?: MsgHdrs): Promise<NodeCommandReply> {
  const res = await nc.request(commandSubject(node), payload, { timeout: 10_000, ...(headers ? { headers } : {}) });
  return NodeCommandReply.parse(res.json());
}

export function sendCommand(nc: NatsConnection, node: string, body: NodeCommandBody, key: CommandSigningKey = COMMAND_KEYS.signing): Promise<NodeCommandReply> {
  return requestRaw(nc, node, JSON.stringify(signNodeCommand(body, key)), traceHeaders());
}

/** Every stored message of the events stream for one node, in stream order. */
export async function readStream(nc: NatsConnection, node?: string): Promise<{ seq: number; event: NodeEvent; msgId: string | undefined; traceparent: string | undefined }[]> {
  // A short timeout: right after a nats-server restart the first request may be lost with the old socket.
  const jsm = await jetstreamManager(nc, { timeout: 1000 });
  const info = await jsm.streams.info(EVENTS_STREAM);
  const out = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(EVENTS_STREAM, { seq }).catch(() => null);
    if (!m) continue;
    if (node && !m.subject.startsWith(`steward.events.${node}.`)) continue;
    out.push({ seq, event: NodeEvent.parse(m.json()), msgId: m.header?.get("Nats-Msg-Id") || undefined, traceparent: m.header?.get("traceparent") || undefined });
  }
  return out;
}

export async function metricValue(registry: { getSingleMetricAsString(name: string): Promise<string> }, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await registry.getSingleMetricAsString(name);
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name) || line.startsWith("#")) continue;
    if (want.every((w) => line.includes(w))) total += Number(line.split(" ").pop());
  }
  return total;
}

import type { DriftReport } from "@steward/contracts/drift";
import type { NodeEvent } from "@steward/contracts/events";
import type { LogTailReply } from "@steward/contracts/log-tail";
import type { NodeState, ServiceState, Snapshot } from "@steward/contracts/world-state";
import { splitRef, type EvalFixture } from "./fixture.js";

/**
 * Pure: what the observer, the supervisor and the node-agents would have written for a fixture at `now` — the world
 * snapshot (every declared service running and healthy unless the fixture says otherwise), the drift report, the
 * node events (ids unique per fixture) and the log-tail answers.
 */

export function fixtureSnapshot(f: EvalFixture, now: Date): Snapshot {
  const at = now.toISOString();
  const nodes: Record<string, NodeState> = {};
  for (const [node, ns] of Object.entries(f.spec.nodes)) {
    const services: Record<string, ServiceState> = {};
    for (const service of Object.keys(ns.services)) {
      const o = f.services[`${node}/${service}`];
      services[service] = {
        name: service,
        state: o?.state ?? "running",
        health: o?.health ?? "healthy",
        ...(o?.exit_code !== undefined ? { exit_code: o.exit_code } : {}),
        starts: o?.starts ?? 1,
        declared: true,
        since: new Date(now.getTime() - 600_000).toISOString(),
        updated_at: at,
        ...(o?.detail ? { detail: o.detail } : {}),
        checks: Object.fromEntries(Object.entries(o?.checks ?? {}).map(([k, c]) => [k, { ok: c.ok, consecutive_failures: c.consecutive_failures, ...(c.detail ? { detail: c.detail } : {}), at }])),
        last_event_id: `ev-${f.id}-0`.slice(0, 128),
      };
    }
    const host = f.hosts[node];
    const repo = f.repos[node];
    const stale = f.stale.includes(node);
    nodes[node] = {
      name: node,
      status: stale ? "stale" : "up",
      last_heartbeat: stale ? new Date(now.getTime() - 900_000).toISOString() : at,
      heartbeat_interval_ms: 5000,
      agent_started_at: new Date(now.getTime() - 86_400_000).toISOString(),
      dropped_events: 0,
      host: host ? { ...host, at } : { load1: 0.2, mem_used_pct: 35, disks: [{ path: "/", used_pct: 40, free_bytes: 40e9 }], at },
      services,
      ...(repo ? { repo: { ...repo, at } } : {}),
    };
  }
  return { world: { version: 1, last_seq: f.events.length, events_applied: f.events.length, event_time: at, nodes }, written_at: at, observer_id: "eval" };
}

export function fixtureDrift(f: EvalFixture, now: Date): DriftReport {
  const at = now.toISOString();
  return {
    computed_at: at,
    snapshot_written_at: at,
    world_seq: f.events.length,
    supervisor_id: "eval",
    skipped: null,
    drifts: f.drift.map((d) => {
      const { node, service } = splitRef(d.ref);
      return { key: `${d.kind}:${d.ref}`, kind: d.kind, node, service, severity: d.severity, message: d.message, since: new Date(now.getTime() - 300_000).toISOString(), proposes: d.proposes } as DriftReport["drifts"][number];
    }),
  };
}

export function fixtureEvents(f: EvalFixture, now: Date, tag: string): NodeEvent[] {
  return f.events.map((e, i) => {
    const { node, service } = splitRef(e.ref);
    const base = { id: `ev-${tag}-${f.id}-${i + 1}`.slice(0, 128), node, ts: new Date(now.getTime() + e.at * 1000).toISOString(), service };
    if (e.type === "service") return { type: "service", ...base, state: e.state, health: e.health, ...(e.exit_code !== undefined ? { exit_code: e.exit_code } : {}), starts: e.starts, declared: true, ...(e.detail ? { detail: e.detail } : {}) };
    return { type: "health_check", ...base, check: e.check, ok: e.ok, consecutive_failures: e.consecutive_failures, ...(e.detail ? { detail: e.detail } : {}) };
  });
}

/** What a node-agent answers: the last `maxBytes` of the service's log, cut at a line start. */
export function fixtureLogTail(f: EvalFixture, node: string, service: string, maxBytes: number): LogTailReply {
  if (!f.spec.nodes[node]?.services[service]) return { ok: false, code: "unknown_service", message: `${service} is not declared on ${node}` };
  const pad = f.log_padding[`${node}/${service}`];
  const text = (f.logs[`${node}/${service}`] ?? `${service} started\n`) + (pad ? `${pad.line}\n`.repeat(pad.count) : "");
  if (Buffer.byteLength(text) <= maxBytes) return { ok: true, node, service, text, bytes: Buffer.byteLength(text), truncated: false };
  let cut = text.slice(-maxBytes);
  const nl = cut.indexOf("\n");
  if (nl >= 0) cut = cut.slice(nl + 1);
  return { ok: true, node, service, text: cut, bytes: Buffer.byteLength(cut), truncated: true };
}

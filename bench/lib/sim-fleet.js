// Simulated node-agents for the benchmarks: the messages a real agent sends (services/node-agent/src/agent.ts), not
// a lighter stand-in. Every node runs 20 services with one HTTP check each. A heartbeat (every 5 s in a real fleet)
// restates all 20 services and all 20 checks' latest results; host metrics go out every 15 s; a state change is what
// an agent publishes when something flips: a `service` event (exited, or running again with a new pid) or a
// `health_check` event (a check failing or passing again). Heartbeats after a change restate it, as a real agent's do.
import { randomBytes, randomUUID } from "node:crypto";
import { eventSubject } from "@steward/contracts/subjects";
import { natsHeaders } from "@steward/platform/bus";

export const SERVICE_NAMES = Array.from({ length: 20 }, (_, i) => `svc-${String(i).padStart(2, "0")}`);
export const HEARTBEAT_MS = 5000;
export const HOST_PROBE_MS = 15_000;

export const nodeNames = (n, prefix = "node") => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(4, "0")}`);

/** A fleet's worth of agents' state and the events they would publish. Deterministic for a given `seed`. */
export function simFleet(nodes, { services = SERVICE_NAMES, seed = 1 } = {}) {
  const started = new Date().toISOString();
  /** node/service → { obs, check } (absent: running and healthy since start) */
  const state = new Map();
  let rnd = seed >>> 0 || 1;
  const random = () => {
    // xorshift32: the same sequence of changes on every run.
    rnd ^= rnd << 13;
    rnd >>>= 0;
    rnd ^= rnd >>> 17;
    rnd ^= rnd << 5;
    rnd >>>= 0;
    return rnd / 2 ** 32;
  };
  const get = (node, service) => {
    const k = `${node}/${service}`;
    let s = state.get(k);
    if (!s) {
      s = { obs: { service, state: "running", health: "healthy", pid: 1000 + services.indexOf(service), starts: 1, declared: true }, check: { ok: true, consecutive_failures: 0, at: started } };
      state.set(k, s);
    }
    return s;
  };
  const id = (node) => `${node}-${randomUUID()}`;

  return {
    nodes,
    services,
    heartbeat(node, ts = new Date().toISOString()) {
      const list = services.map((s) => get(node, s));
      return {
        type: "heartbeat",
        id: id(node),
        node,
        ts,
        interval_ms: HEARTBEAT_MS,
        agent_version: "bench",
        started_at: started,
        services: list.map((s) => s.obs),
        checks: list.map((s, i) => ({ service: services[i], check: "http", ok: s.check.ok, consecutive_failures: s.check.consecutive_failures, ...(s.check.ok ? {} : { detail: "GET http://127.0.0.1/health: 503" }), at: s.check.at })),
        dropped_events: 0,
      };
    },
    host(node, ts = new Date().toISOString()) {
      return { type: "host", id: id(node), node, ts, load1: +(random() * 2).toFixed(2), mem_used_pct: +(30 + random() * 40).toFixed(1), disks: [{ path: "/", used_pct: +(40 + random() * 20).toFixed(1), free_bytes: Math.round(5e10 * random()) }] };
    },
    /** One state change on a random node and service: half service state flips, half check flips. */
    change(ts = new Date().toISOString()) {
      const node = nodes[Math.floor(random() * nodes.length)];
      const service = services[Math.floor(random() * services.length)];
      const s = get(node, service);
      if (random() < 0.5) {
        s.obs =
          s.obs.state === "running"
            ? { service, state: "exited", health: "none", exit_code: 137, signal: "SIGKILL", starts: s.obs.starts, declared: true }
            : { service, state: "running", health: s.check.ok ? "healthy" : "unhealthy", pid: 2000 + Math.floor(random() * 60_000), starts: s.obs.starts + 1, declared: true };
        return { type: "service", id: id(node), node, ts, ...s.obs };
      }
      const ok = !s.check.ok;
      s.check = { ok, consecutive_failures: ok ? 0 : 3, at: ts };
      if (s.obs.state === "running") s.obs = { ...s.obs, health: ok ? "healthy" : "unhealthy" };
      return { type: "health_check", id: id(node), node, ts, service, check: "http", ok, consecutive_failures: s.check.consecutive_failures, ...(ok ? {} : { detail: "GET http://127.0.0.1/health: 503" }) };
    },
  };
}

/** What a real agent's publish carries: the event as JSON, its id as Nats-Msg-Id, and W3C trace context. */
export function publishEvent(js, e) {
  const headers = natsHeaders();
  headers.set("traceparent", `00-${randomBytes(16).toString("hex")}-${randomBytes(8).toString("hex")}-01`);
  return js.publish(eventSubject(e.node, e.type), JSON.stringify(e), { msgID: e.id, headers });
}

/**
 * The real event mix of a 1,000-node fleet in the proportions its agents send it with 200 state changes per second:
 * per 5 s, 1,000 heartbeats (20 services and 20 checks each), 333 host reports and 1,000 changes (3 : 1 : 3).
 * `publish(n)` publishes the next n events of that mix (calls continue where the last one stopped), in chunks, never
 * held whole: a million of these is ~2 GB of JSON.
 */
export function mixPublisher(js, { nodes = 1000, chunk = 1000 } = {}) {
  const fleet = simFleet(nodeNames(nodes));
  let i = 0, hb = 0, host = 0;
  return {
    fleet,
    async publish(n) {
      const end = i + n;
      while (i < end) {
        const batch = [];
        for (; batch.length < chunk && i < end; i++) {
          const k = i % 7;
          const e = k < 3 ? fleet.heartbeat(fleet.nodes[hb++ % nodes]) : k === 3 ? fleet.host(fleet.nodes[host++ % nodes]) : fleet.change();
          batch.push(publishEvent(js, e));
        }
        await Promise.all(batch);
      }
    },
  };
}

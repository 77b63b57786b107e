import { redactSecretsInText } from "@steward/platform/redact";
import type { Drift, DriftReport } from "@steward/contracts/drift";
import type { FleetSpec, HealthCheck, ServiceSpec } from "@steward/fleet/fleet-spec";
import type { LogTailReply } from "@steward/contracts/log-tail";
import type { ContainerInspectReply } from "@steward/contracts/container-inspect";
import type { NodeEvent } from "@steward/contracts/events";
import type { Snapshot } from "@steward/contracts/world-state";

/** Where evidence comes from. The NATS-backed implementation lives in sources.ts; tests pass their own. */
export interface EvidenceSources {
  spec(): Promise<FleetSpec>;
  /** The world, or only the named nodes (a record each) when given. */
  world(nodes?: readonly string[]): Promise<Snapshot | undefined>;
  drift(): Promise<DriftReport | undefined>;
  /** Recent events of a node, oldest first. */
  events(node: string, sinceMs: number, limit: number): Promise<NodeEvent[]>;
  /**
   * The last bytes of a service's log from its node-agent (`maxBytes` overrides the configured size); `range` (ISO
   * times) for compose services only, whose lines carry the engine's timestamps.
   */
  logTail(node: string, service: string, maxBytes?: number, range?: { since?: string; until?: string }): Promise<LogTailReply>;
  /** A compose service's containers as its node-agent's engine describes them (no env values). */
  containerInspect(node: string, service: string): Promise<ContainerInspectReply>;
}

export interface Target {
  node: string;
  service: string;
}

export interface EventSummary {
  ts: string;
  type: string;
  service?: string;
  state?: string;
  health?: string;
  exit_code?: number | null;
  check?: string;
  ok?: boolean;
  detail?: string;
}

/** Everything a model (or the runbooks) sees. Built only from sanitized parts: never env values or secrets. */
export interface Evidence {
  targets: Target[];
  drifts: Pick<Drift, "key" | "kind" | "node" | "service" | "message" | "since" | "proposes">[];
  services: Record<string, { state: string; health: string; exit_code?: number | null; starts: number; since: string; detail?: string; checks: Record<string, { ok: boolean; consecutive_failures: number; detail?: string }> }>;
  hosts: Record<string, { load1: number; mem_used_pct: number; disks: { path: string; used_pct: number; free_bytes: number }[] } | null>;
  events: Record<string, EventSummary[]>;
  /** Exits/failures seen per `node/service` in the events window. */
  crashes: Record<string, number>;
  spec: Record<string, Record<string, unknown>>;
  logs: Record<string, string>;
  attached: unknown;
  notes: string[];
}

const SECRET_KEY = /^(env|environment|secrets?|password|passwd|token|api[_-]?key|credentials?|private[_-]?key|fingerprint|authorization)$|secret|password|token/i;

/** Deep copy without keys that hold env values or secrets, strings redacted; bounded depth and size. */
export function stripSecrets(v: unknown, depth = 0): unknown {
  if (depth > 8) return "[…]";
  if (typeof v === "string") return redactSecretsInText(v.length > 4000 ? `${v.slice(0, 4000)}…` : v);
  if (Array.isArray(v)) return v.slice(0, 100).map((x) => stripSecrets(x, depth + 1));
  if (v && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (!SECRET_KEY.test(k)) out[k] = stripSecrets(x, depth + 1);
    return out;
  }
  return v;
}

function checkExcerpt(c: HealthCheck): Record<string, unknown> {
  switch (c.type) {
    case "http":
      return { type: c.type, url: redactSecretsInText(c.url), expect_status: c.expect_status, retries: c.retries };
    case "tcp":
      return { type: c.type, host: c.host, port: c.port, retries: c.retries };
    case "command":
      return { type: c.type, command: c.command.map((a) => redactSecretsInText(a)), retries: c.retries };
    default: {
      const never: never = c;
      return never;
    }
  }
}

/**
 * A spec excerpt for a prompt: an allow-list of fields, so `env` (values and secret references),
 * env files' contents and the secrets section can never slip in, whatever the spec grows.
 */
export function specExcerpt(s: ServiceSpec): Record<string, unknown> {
  const common = { autostart: s.autostart, depends_on: s.depends_on, health: s.health.map(checkExcerpt) };
  switch (s.kind) {
    case "process":
      return { kind: s.kind, command: s.command.map((a) => redactSecretsInText(a)), restart: s.restart, ...common };
    case "compose":
      return { kind: s.kind, files: s.files, project: s.project ?? null, ...common };
    default: {
      const never: never = s;
      return never;
    }
  }
}

const CRASH_STATES = new Set(["exited", "failed"]);

export function summarize(e: NodeEvent): EventSummary | undefined {
  switch (e.type) {
    case "service":
      return { ts: e.ts, type: e.type, service: e.service, state: e.state, health: e.health, exit_code: e.exit_code ?? null, ...(e.detail ? { detail: redactSecretsInText(e.detail.slice(0, 300)) } : {}) };
    case "health_check":
      return { ts: e.ts, type: e.type, service: e.service, check: e.check, ok: e.ok, ...(e.detail ? { detail: redactSecretsInText(e.detail.slice(0, 300)) } : {}) };
    case "host":
    case "heartbeat":
    case "repo":
    case "secret":
      // Heartbeats restate state (already in `services`); secret events carry fingerprints: none go into a prompt.
      return undefined;
    default:
      return undefined;
  }
}

const mentions = (text: string, name: string): boolean => new RegExp(`(^|[^A-Za-z0-9_-])${name.replace(/[-]/g, "\\-")}($|[^A-Za-z0-9_-])`, "i").test(text);

/** Which (node, service) pairs a task is about: attached evidence first, then names in the question, then current drift. */
export function resolveTargets(spec: FleetSpec, question: string, attached: Record<string, unknown> | null, drifts: readonly Drift[], agent: string): Target[] {
  const out: Target[] = [];
  const add = (node: string, service: string) => {
    if (spec.nodes[node]?.services[service] && !out.some((t) => t.node === node && t.service === service)) out.push({ node, service });
  };
  const a = attached ?? {};
  const ad = (a["drift"] ?? {}) as Record<string, unknown>;
  for (const src of [a, ad]) if (typeof src["node"] === "string" && typeof src["service"] === "string") add(src["node"], src["service"]);
  for (const [node, ns] of Object.entries(spec.nodes)) {
    const nodeNamed = mentions(question, node);
    for (const service of Object.keys(ns.services)) if (mentions(question, service) || (nodeNamed && drifts.some((d) => d.node === node && d.service === service))) add(node, service);
  }
  if (out.length === 0 && agent === "diagnostician") {
    for (const d of drifts) if (d.severity !== "report") add(d.node, d.service);
  }
  return out.slice(0, 5);
}

export interface GatherInput {
  question: string;
  agent: string;
  attached: Record<string, unknown> | null;
  now: Date;
  eventsWindowMs: number;
  maxEvents?: number;
  maxLogTails?: number;
}

export type StepSink = (kind: "tool" | "error", message: string) => Promise<void>;

/** Gathers evidence through the tools. A tool that fails becomes a note; it never fails the task. */
export async function gatherEvidence(src: EvidenceSources, input: GatherInput, step: StepSink): Promise<Evidence> {
  const ev: Evidence = { targets: [], drifts: [], services: {}, hosts: {}, events: {}, crashes: {}, spec: {}, logs: {}, attached: input.attached ? stripSecrets(input.attached) : null, notes: [] };
  const note = async (msg: string) => {
    ev.notes.push(msg);
    await step("error", msg);
  };
  let spec: FleetSpec;
  try {
    spec = await src.spec();
    await step("tool", "read the fleet spec");
  } catch (err) {
    await note(`fleet spec unreadable: ${(err as Error).message.slice(0, 200)}`);
    return ev;
  }
  let drifts: Drift[] = [];
  try {
    const report = await src.drift();
    drifts = report?.drifts ?? [];
    await step("tool", `read the drift report (${drifts.length} finding${drifts.length === 1 ? "" : "s"})`);
  } catch (err) {
    await note(`drift report unreadable: ${(err as Error).message.slice(0, 200)}`);
  }
  ev.targets = resolveTargets(spec, input.question, input.attached, drifts, input.agent);
  const targetNodes = [...new Set(ev.targets.map((t) => t.node))];
  const isTarget = (node: string, service: string) => ev.targets.some((t) => t.node === node && t.service === service);
  ev.drifts = drifts.filter((d) => isTarget(d.node, d.service) || (ev.targets.length === 0 && d.severity !== "report")).slice(0, 20).map((d) => ({ key: d.key, kind: d.kind, node: d.node, service: d.service, message: redactSecretsInText(d.message), since: d.since, proposes: d.proposes }));
  for (const t of ev.targets) {
    const s = spec.nodes[t.node]?.services[t.service];
    if (s) (ev.spec[t.node] ??= {})[t.service] = specExcerpt(s);
  }

  try {
    const snap = await src.world(targetNodes);
    if (snap) {
      for (const t of ev.targets) {
        const s = snap.world.nodes[t.node]?.services[t.service];
        if (!s) continue;
        const checks: Evidence["services"][string]["checks"] = {};
        for (const [name, c] of Object.entries(s.checks)) checks[name] = { ok: c.ok, consecutive_failures: c.consecutive_failures, ...(c.detail ? { detail: redactSecretsInText(c.detail.slice(0, 300)) } : {}) };
        ev.services[`${t.node}/${t.service}`] = { state: s.state, health: s.health, exit_code: s.exit_code ?? null, starts: s.starts, since: s.since, ...(s.detail ? { detail: redactSecretsInText(s.detail.slice(0, 300)) } : {}), checks };
      }
      for (const node of targetNodes) {
        const n = snap.world.nodes[node];
        ev.hosts[node] = n?.host ? { load1: n.host.load1, mem_used_pct: n.host.mem_used_pct, disks: n.host.disks } : null;
      }
      await step("tool", `read the world state (snapshot written ${snap.written_at})`);
    } else await note("no world snapshot yet");
  } catch (err) {
    await note(`world state unreadable: ${(err as Error).message.slice(0, 200)}`);
  }

  for (const node of targetNodes) {
    try {
      const events = await src.events(node, input.now.getTime() - input.eventsWindowMs, 500);
      const wanted = ev.targets.filter((t) => t.node === node).map((t) => t.service);
      const sums = events.map(summarize).filter((e): e is EventSummary => e !== undefined && (e.service === undefined || wanted.includes(e.service)));
      for (const svc of wanted) ev.crashes[`${node}/${svc}`] = sums.filter((e) => e.type === "service" && e.service === svc && e.state !== undefined && CRASH_STATES.has(e.state)).length;
      ev.events[node] = sums.slice(-(input.maxEvents ?? 30));
      await step("tool", `read ${sums.length} recent event(s) of node ${node}`);
    } catch (err) {
      await note(`events of ${node} unreadable: ${(err as Error).message.slice(0, 200)}`);
    }
  }

  for (const t of ev.targets.filter((x) => spec.nodes[x.node]?.services[x.service]?.kind === "process").slice(0, input.maxLogTails ?? 3)) {
    try {
      const r = await src.logTail(t.node, t.service);
      if (r.ok) {
        ev.logs[`${t.node}/${t.service}`] = redactSecretsInText(r.text);
        await step("tool", `read the last ${r.bytes} bytes of the log of ${t.service} on ${t.node}`);
      } else await note(`log of ${t.service} on ${t.node}: ${r.code}: ${r.message}`);
    } catch (err) {
      await note(`log of ${t.service} on ${t.node} unavailable: ${(err as Error).message.slice(0, 200)}`);
    }
  }
  return ev;
}

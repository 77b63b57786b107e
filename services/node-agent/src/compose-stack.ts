import { resolve } from "node:path";
import type { ComposeService, FleetSpec } from "@steward/fleet/fleet-spec";
import type { ServiceObservation } from "@steward/contracts/events";
import type { CheckProgress } from "./plan.js";

/** A deploy step on this node that did not reach a healthy stack: what failed, in operator words. */
export class StackDeployError extends Error {
  constructor(
    readonly stackName: string,
    readonly step: "config" | "pull" | "create" | "start" | "health" | "rollback",
    detail: string,
  ) {
    super(detail);
    this.name = "StackDeployError";
  }
}

/** What the spec says about one stack on this node. */
export interface StackSettings {
  name: string;
  spec: ComposeService;
  /** Compose project name: the spec's `project`, else the stack's name. */
  project: string;
  /** The node's deploy checkout: the stack's files and env file resolve against it. */
  checkout: string;
  /** The deploy health gate: the stack's `deploy.health_timeout`, else the fleet's. */
  healthTimeoutMs: number;
}

/** Pure: the compose stacks the spec declares on `node`. */
export function stackSettings(spec: FleetSpec, node: string, specDir: string): StackSettings[] {
  const nodeSpec = spec.nodes[node];
  const checkout = resolve(specDir, nodeSpec?.repo_path ?? spec.repo?.path ?? ".");
  const out: StackSettings[] = [];
  for (const [name, svc] of Object.entries(nodeSpec?.services ?? {})) {
    if (svc.kind !== "compose") continue;
    out.push({ name, spec: svc, project: svc.project ?? name, checkout, healthTimeoutMs: svc.deploy?.health_timeout ?? spec.deploy.health_timeout });
  }
  return out;
}

/** One declared stack as the driver tracks it between probes and commands. */
export interface Stack extends StackSettings {
  /** Last observation (heartbeats restate it). */
  obs: ServiceObservation;
  /** The last published observation, serialized: an unchanged one is not published again. */
  lastKey: string;
  /** Commands on one stack run one at a time (see `exclusive`). */
  lock: Promise<unknown>;
  /** The config hash being deployed, while a deploy runs: observed as `starting`. */
  deploying: string | undefined;
  /** Stopped by a command: exited containers are reported `stopped`, not `exited`. */
  stoppedByCommand: boolean;
  /** Progress of the spec's health checks, while the stack runs. */
  checks: CheckProgress[];
}

/** The declared stacks, by name. */
export interface StackSet {
  /** Takes the spec the agent now runs with. A stack that left it is forgotten; its containers are left as they are (never removed unasked). */
  update(spec: FleetSpec): void;
  get(name: string): Stack | undefined;
  has(name: string): boolean;
  all(): Stack[];
}

export function createStackSet(deps: { node: string; specDir: string }): StackSet {
  const stacks = new Map<string, Stack>();
  return {
    update(spec) {
      const declared = stackSettings(spec, deps.node, deps.specDir);
      for (const settings of declared) {
        const prev = stacks.get(settings.name);
        if (prev) Object.assign(prev, settings);
        else stacks.set(settings.name, { ...settings, obs: { service: settings.name, state: "stopped", health: "none", starts: 0, declared: true }, lastKey: "", lock: Promise.resolve(), deploying: undefined, stoppedByCommand: false, checks: [] });
      }
      const names = new Set(declared.map((s) => s.name));
      for (const name of [...stacks.keys()]) if (!names.has(name)) stacks.delete(name);
    },
    get: (name) => stacks.get(name),
    has: (name) => stacks.has(name),
    all: () => [...stacks.values()],
  };
}

/** Runs `fn` after every earlier command on the same stack: one operation per stack at a time. */
export function exclusive<T>(s: Stack, fn: () => Promise<T>): Promise<T> {
  const next = s.lock.then(fn, fn);
  s.lock = next.catch(() => undefined);
  return next;
}

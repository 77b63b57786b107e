import { createHash } from "node:crypto";
import { resolve as resolvePath } from "node:path";
import { parseDocument } from "yaml";
import { canonicalJson, hmacHex } from "@steward/contracts/node-command";
import type { EnvValue } from "@steward/fleet/fleet-spec";
import type { ServiceHealth, ServiceObservation } from "@steward/contracts/events";
import type { ContainerCreateBody, ContainerInspect, HealthConfig } from "./docker/types.js";
import { startOrder } from "./plan.js";

/**
 * Pure compose handling: parse and merge a stack's compose files, normalize them, hash what a deploy would run,
 * and render the engine's container-create bodies. No I/O here; the driver reads files and talks to the engine.
 */

export class ComposeError extends Error {
  constructor(
    /** The compose file (as declared) the problem is in, when it is in one. */
    readonly file: string | undefined,
    readonly problem: string,
  ) {
    super(file ? `${file}: ${problem}` : problem);
    this.name = "ComposeError";
  }
}

export interface ComposeHealthcheck {
  test: string[];
  interval_ms?: number;
  timeout_ms?: number;
  retries?: number;
  start_period_ms?: number;
}

/** One compose service after normalization: list/map spellings unified, so equal meaning hashes equal. */
export interface ComposeServiceDef {
  image: string;
  command?: string[];
  entrypoint?: string[];
  environment: Record<string, string>;
  labels: Record<string, string>;
  depends_on: string[];
  /** `null`: the image's own healthcheck is disabled. */
  healthcheck?: ComposeHealthcheck | null;
  restart?: "no" | "always" | "unless-stopped" | "on-failure";
  ports: string[];
  volumes: string[];
  working_dir?: string;
  user?: string;
  /** Keys Steward does not apply (networks, build, …): they still count toward the config hash. */
  other: Record<string, unknown>;
}

export type ComposeServices = Record<string, ComposeServiceDef>;

const KNOWN = new Set(["image", "command", "entrypoint", "environment", "labels", "depends_on", "healthcheck", "restart", "ports", "volumes", "working_dir", "user", "container_name"]);

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function scalar(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  throw new Error("expected a string, number or boolean");
}

/** `KEY=value` list or map → map. A bare `KEY` (take it from the shell) has no value on an agent: empty. */
function keyValues(v: unknown, what: string, file: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  const out: Record<string, string> = {};
  if (Array.isArray(v)) {
    for (const item of v) {
      const s = scalar(item);
      const eq = s.indexOf("=");
      if (eq === 0) throw new ComposeError(file, `${what}: '${s.slice(0, 40)}' has no name`);
      if (eq < 0) out[s] = "";
      else out[s.slice(0, eq)] = s.slice(eq + 1);
    }
    return out;
  }
  if (isMap(v)) {
    for (const [k, val] of Object.entries(v)) {
      try {
        out[k] = scalar(val);
      } catch {
        throw new ComposeError(file, `${what}.${k}: expected a string, number or boolean`);
      }
    }
    return out;
  }
  throw new ComposeError(file, `${what}: expected a list of KEY=value or a map`);
}

/** Compose's shell-ish split of a string command: whitespace separates, quotes group. */
export function splitCommand(s: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quote: string | undefined;
  let has = false;
  for (const c of s) {
    if (quote) {
      if (c === quote) quote = undefined;
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      has = true;
    } else if (/\s/.test(c)) {
      if (has || cur) out.push(cur);
      cur = "";
      has = false;
    } else {
      cur += c;
    }
  }
  if (has || cur) out.push(cur);
  return out;
}

function commandList(v: unknown, what: string, file: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return splitCommand(v);
  if (Array.isArray(v)) return v.map((x) => scalar(x));
  throw new ComposeError(file, `${what}: expected a string or a list`);
}

/** Compose durations: `1m30s`, `10s`, `500ms`, `2h`. */
export function composeDurationMs(v: unknown, what: string, file: string): number {
  if (typeof v === "number") return v * 1000;
  const s = String(v);
  const parts = [...s.matchAll(/(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== s) throw new ComposeError(file, `${what}: '${s}' is not a duration like 10s or 1m30s`);
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  return Math.round(parts.reduce((sum, p) => sum + Number(p[1]) * (unit[p[2] as string] as number), 0));
}

function healthcheck(v: unknown, file: string, svc: string): ComposeHealthcheck | null | undefined {
  if (v === undefined) return undefined;
  if (!isMap(v)) throw new ComposeError(file, `services.${svc}.healthcheck: expected a map`);
  if (v["disable"] === true) return null;
  const where = `services.${svc}.healthcheck`;
  let test: string[];
  if (typeof v["test"] === "string") test = ["CMD-SHELL", v["test"]];
  else if (Array.isArray(v["test"]) && v["test"].length > 0) test = v["test"].map((x) => scalar(x));
  else throw new ComposeError(file, `${where}.test: expected a command (string or list)`);
  if (test[0] === "NONE") return null;
  const out: ComposeHealthcheck = { test };
  if (v["interval"] !== undefined) out.interval_ms = composeDurationMs(v["interval"], `${where}.interval`, file);
  if (v["timeout"] !== undefined) out.timeout_ms = composeDurationMs(v["timeout"], `${where}.timeout`, file);
  if (v["start_period"] !== undefined) out.start_period_ms = composeDurationMs(v["start_period"], `${where}.start_period`, file);
  if (v["retries"] !== undefined) {
    const r = Number(v["retries"]);
    if (!Number.isInteger(r) || r < 0) throw new ComposeError(file, `${where}.retries: expected a whole number`);
    out.retries = r;
  }
  return out;
}

/** Partial definition from one file: only the keys that file sets, so a later file overrides just those. */
type Partial_ = Partial<ComposeServiceDef>;

/**
 * `lenient`: the real Compose applies the files, so what only the Engine-API applier cannot do (build, long
 * port/volume syntax) is kept as written (hashed, in `other`) instead of refused.
 */
function normalizeService(name: string, raw: unknown, file: string, lenient: boolean): Partial_ {
  if (!isMap(raw)) throw new ComposeError(file, `services.${name}: expected a map`);
  const out: Partial_ = {};
  const where = (k: string) => `services.${name}.${k}`;
  if (raw["build"] !== undefined && raw["image"] === undefined && !lenient) throw new ComposeError(file, `${where("build")}: building images is not supported on a node; set image`);
  if (raw["image"] !== undefined) {
    if (typeof raw["image"] !== "string" || raw["image"].trim() === "") throw new ComposeError(file, `${where("image")}: expected an image name`);
    out.image = raw["image"].trim();
  }
  const cmd = commandList(raw["command"], where("command"), file);
  if (cmd) out.command = cmd;
  const ep = commandList(raw["entrypoint"], where("entrypoint"), file);
  if (ep) out.entrypoint = ep;
  if (raw["environment"] !== undefined) out.environment = keyValues(raw["environment"], where("environment"), file);
  if (raw["labels"] !== undefined) out.labels = keyValues(raw["labels"], where("labels"), file);
  if (raw["depends_on"] !== undefined) {
    const d = raw["depends_on"];
    if (Array.isArray(d)) out.depends_on = d.map((x) => scalar(x));
    else if (isMap(d)) out.depends_on = Object.keys(d);
    else throw new ComposeError(file, `${where("depends_on")}: expected a list or a map`);
  }
  const hc = healthcheck(raw["healthcheck"], file, name);
  if (hc !== undefined) out.healthcheck = hc;
  if (raw["restart"] !== undefined) {
    const r = String(raw["restart"]).split(":")[0];
    if (r !== "no" && r !== "always" && r !== "unless-stopped" && r !== "on-failure") throw new ComposeError(file, `${where("restart")}: expected no, always, unless-stopped or on-failure`);
    out.restart = r;
  }
  for (const k of ["ports", "volumes"] as const) {
    const v = raw[k];
    if (v === undefined) continue;
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string" && typeof x !== "number")) {
      if (!lenient) throw new ComposeError(file, `${where(k)}: only the short syntax (a list of strings) is supported`);
      continue; // kept as written in `other` below
    }
    out[k] = v.map((x) => String(x));
  }
  if (raw["working_dir"] !== undefined) out.working_dir = scalar(raw["working_dir"]);
  if (raw["user"] !== undefined) out.user = scalar(raw["user"]);
  const other: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) if (!KNOWN.has(k) || ((k === "ports" || k === "volumes") && out[k] === undefined)) other[k] = v;
  if (Object.keys(other).length > 0) out.other = other;
  return out;
}

const uniqSorted = (xs: string[]): string[] => [...new Set(xs)].sort();

/** Compose's merge: maps (environment, labels) merge key by key, ports/volumes accumulate, everything else is replaced. */
function mergeService(base: Partial_, over: Partial_): Partial_ {
  const out: Partial_ = { ...base, ...over };
  if (base.environment || over.environment) out.environment = { ...base.environment, ...over.environment };
  if (base.labels || over.labels) out.labels = { ...base.labels, ...over.labels };
  if (base.ports || over.ports) out.ports = uniqSorted([...(base.ports ?? []), ...(over.ports ?? [])]);
  if (base.volumes || over.volumes) out.volumes = uniqSorted([...(base.volumes ?? []), ...(over.volumes ?? [])]);
  if (base.other || over.other) out.other = { ...base.other, ...over.other };
  return out;
}

/**
 * Parses and merges compose files in order (later files override earlier ones), as `docker compose -f a -f b` does.
 * `${VAR}` interpolation is not performed: values are used as written.
 */
export function mergeComposeFiles(files: readonly { path: string; text: string }[], opts: { lenient?: boolean } = {}): ComposeServices {
  if (files.length === 0) throw new ComposeError(undefined, "no compose files");
  let merged: Record<string, Partial_> = {};
  for (const f of files) {
    const doc = parseDocument(f.text, { prettyErrors: false, uniqueKeys: true });
    if (doc.errors.length > 0) throw new ComposeError(f.path, `YAML: ${doc.errors[0]?.message.split("\n")[0] ?? "invalid"}`);
    const raw: unknown = doc.toJS();
    if (!isMap(raw)) throw new ComposeError(f.path, "not a compose file (expected a map with 'services')");
    if (!isMap(raw["services"])) throw new ComposeError(f.path, "not a compose file (no 'services' map)");
    const next: Record<string, Partial_> = { ...merged };
    for (const [name, svc] of Object.entries(raw["services"])) {
      if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) throw new ComposeError(f.path, `services.${name}: not a valid service name`);
      const part = normalizeService(name, svc, f.path, opts.lenient ?? false);
      next[name] = merged[name] ? mergeService(merged[name], part) : part;
    }
    merged = next;
  }
  const out: ComposeServices = {};
  for (const [name, p] of Object.entries(merged)) {
    if (!p.image && !(opts.lenient && p.other?.["build"] !== undefined)) throw new ComposeError(files[files.length - 1]?.path, `services.${name}: no image`);
    for (const dep of p.depends_on ?? []) if (!(dep in merged)) throw new ComposeError(undefined, `services.${name}.depends_on: '${dep}' is not a service of this stack`);
    const def: ComposeServiceDef = {
      // "" only when Compose builds it (lenient): the Engine-API applier refuses such a revision.
      image: p.image ?? "",
      environment: p.environment ?? {},
      labels: p.labels ?? {},
      depends_on: uniqSorted(p.depends_on ?? []),
      ports: uniqSorted(p.ports ?? []),
      volumes: uniqSorted(p.volumes ?? []),
      other: p.other ?? {},
    };
    if (p.command) def.command = p.command;
    if (p.entrypoint) def.entrypoint = p.entrypoint;
    if (p.healthcheck !== undefined) def.healthcheck = p.healthcheck;
    if (p.restart) def.restart = p.restart;
    if (p.working_dir !== undefined) def.working_dir = p.working_dir;
    if (p.user !== undefined) def.user = p.user;
    out[name] = def;
  }
  return out;
}

/**
 * What a deploy of a stack would run, free of secret values: compose content, the spec's env with secret refs as
 * their names, the env file as keyed digests (HMAC with the fleet key, never values). Stored as the node's
 * revision record and hashed into the config hash.
 */
export interface StackRevision {
  /**
   * The revision's identity: `sha256:<hex>` over everything below (the content hash), or, where the real Compose
   * applies stacks, `compose:<hex>` over the content hash and Compose's own resolved config hashes.
   */
  hash: string;
  /** Set when `hash` includes Compose's hashes: the content hash alone (the `steward.config-hash` label). */
  content_hash?: string;
  /** Compose's own config hash of each service's resolved configuration (`config --hash "*"`), when Compose applies. */
  compose_hashes?: Record<string, string>;
  project: string;
  services: ComposeServices;
  env: Record<string, EnvValue>;
  /** Absolute path of the stack's env file, if any; its values are read again at each deploy. */
  env_file: string | null;
  /** Keyed digests of the env file's values, by key: a changed value changes the hash without revealing it. */
  env_file_digests: Record<string, string>;
}

/** Hash over the normalized stack; stable under key order in files, maps and the spec (canonical JSON). */
export function configHash(r: Omit<StackRevision, "hash" | "content_hash" | "compose_hashes">): string {
  const env = Object.fromEntries(Object.entries(r.env).map(([k, v]) => [k, typeof v === "string" ? v : { secret: v.secret }]));
  const doc = { v: 1, project: r.project, services: r.services, env, env_file: r.env_file === null ? null : r.env_file_digests };
  return `sha256:${createHash("sha256").update(canonicalJson(doc)).digest("hex")}`;
}

export function buildRevision(input: Omit<StackRevision, "hash" | "content_hash" | "compose_hashes">): StackRevision {
  return { ...input, hash: configHash(input) };
}

/** The content hash of a revision: what Steward's label on its containers says. */
export const contentHash = (r: Pick<StackRevision, "hash" | "content_hash">): string => r.content_hash ?? r.hash;

/**
 * Pure: a revision's identity from its content hash and Compose's resolved config hash of each service. Keyed with the
 * fleet key: Compose hashes the resolved environment (secret values included), so the published digest must not be
 * one anybody could test guesses against.
 */
export function resolvedHash(key: string, content: string, compose: Record<string, string>): string {
  return `compose:${hmacHex(key, canonicalJson({ v: 1, content, compose }))}`;
}

/** Pure: the revision `base` (content only) with Compose's resolved hashes folded into its identity. */
export function withComposeHashes(key: string, base: StackRevision, compose: Record<string, string>): StackRevision {
  const content = contentHash(base);
  return { ...base, content_hash: content, compose_hashes: compose, hash: resolvedHash(key, content, compose) };
}

/** Pure: why the Engine-API applier cannot apply these services (what only the real Compose does), if it cannot. */
export function engineUnsupported(services: ComposeServices): string | undefined {
  for (const [name, s] of Object.entries(services)) {
    if (!s.image) return `services.${name}.build: building images needs Compose on the node (docker compose or docker-compose); set image`;
    for (const k of ["ports", "volumes"] as const) if (s.other[k] !== undefined) return `services.${name}.${k}: the long syntax needs Compose on the node (docker compose or docker-compose); use the short syntax`;
  }
  return undefined;
}

/** Compose's container name for the first replica of a service. */
export const containerName = (project: string, service: string): string => `${project}-${service}-1`;

/** Services of a stack in the order they are deployed: dependencies first, then by name. */
export function deployOrder(services: ComposeServices): string[] {
  return startOrder(services);
}

export const LABEL_PROJECT = "com.docker.compose.project";
export const LABEL_SERVICE = "com.docker.compose.service";
export const LABEL_CONFIG_HASH = "steward.config-hash";
export const LABEL_STACK = "steward.stack";
/** Compose's hash of a service's resolved configuration, set by both Compose versions on every container. */
export const LABEL_COMPOSE_HASH = "com.docker.compose.config-hash";

const ns = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : ms * 1_000_000);

function parsePort(p: string): { key: string; binding?: { HostIp?: string; HostPort: string } } {
  const [main, proto = "tcp"] = p.split("/") as [string, string?];
  const parts = main.split(":");
  const container = parts[parts.length - 1] as string;
  const key = `${container}/${proto}`;
  if (parts.length === 1) return { key };
  const hostPort = parts[parts.length - 2] as string;
  const hostIp = parts.length > 2 ? parts.slice(0, -2).join(":") : undefined;
  return { key, binding: hostIp ? { HostIp: hostIp, HostPort: hostPort } : { HostPort: hostPort } };
}

/**
 * The engine's create body for one service of a revision. `env` is the final environment (compose's, then the
 * env file, then the spec's with secrets resolved): it goes to the engine and nowhere else.
 */
export function containerCreateBody(r: StackRevision, stack: string, service: string, env: Record<string, string>, baseDir: string): ContainerCreateBody {
  const s = r.services[service];
  if (!s) throw new ComposeError(undefined, `stack ${stack} has no service ${service}`);
  const body: ContainerCreateBody = {
    Image: s.image,
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    Labels: {
      ...s.labels,
      [LABEL_PROJECT]: r.project,
      [LABEL_SERVICE]: service,
      "com.docker.compose.container-number": "1",
      "com.docker.compose.oneoff": "False",
      [LABEL_CONFIG_HASH]: contentHash(r),
      [LABEL_STACK]: stack,
    },
    HostConfig: {},
  };
  if (s.command) body.Cmd = s.command;
  if (s.entrypoint) body.Entrypoint = s.entrypoint;
  if (s.working_dir) body.WorkingDir = s.working_dir;
  if (s.user) body.User = s.user;
  if (s.healthcheck === null) body.Healthcheck = { Test: ["NONE"] };
  else if (s.healthcheck) {
    const h: HealthConfig = { Test: s.healthcheck.test };
    const iv = ns(s.healthcheck.interval_ms);
    const to = ns(s.healthcheck.timeout_ms);
    const sp = ns(s.healthcheck.start_period_ms);
    if (iv !== undefined) h.Interval = iv;
    if (to !== undefined) h.Timeout = to;
    if (sp !== undefined) h.StartPeriod = sp;
    if (s.healthcheck.retries !== undefined) h.Retries = s.healthcheck.retries;
    body.Healthcheck = h;
  }
  const hc = body.HostConfig as NonNullable<ContainerCreateBody["HostConfig"]>;
  if (s.restart) hc.RestartPolicy = { Name: s.restart };
  if (s.ports.length > 0) {
    body.ExposedPorts = {};
    hc.PortBindings = {};
    for (const p of s.ports) {
      const { key, binding } = parsePort(p);
      body.ExposedPorts[key] = {};
      if (binding) (hc.PortBindings[key] ??= []).push(binding);
    }
  }
  if (s.volumes.length > 0) {
    // Relative host paths resolve against the deploy checkout, as compose resolves them against the project dir.
    hc.Binds = s.volumes.map((v) => {
      const [host, ...rest] = v.split(":");
      return host !== undefined && (host.startsWith("./") || host.startsWith("../")) ? [resolvePath(baseDir, host), ...rest].join(":") : v;
    });
  }
  return body;
}

/** Health of one container as the engine reports it; `none` when its image has no healthcheck. */
export function containerHealth(c: ContainerInspect): ServiceHealth {
  const h = c.State.Health?.Status;
  return h === "healthy" || h === "unhealthy" || h === "starting" ? h : "none";
}

/** The worst of several healths (unhealthy, then starting, then healthy). */
export function worst(hs: ServiceHealth[]): ServiceHealth {
  if (hs.includes("unhealthy")) return "unhealthy";
  if (hs.includes("starting")) return "starting";
  if (hs.includes("healthy")) return "healthy";
  return "none";
}

/**
 * Pure: the running revision's identity from the containers' labels when Compose applies stacks: Steward's content
 * label with Compose's config-hash label of each service, folded as `resolvedHash` folds the wanted revision's. A
 * container without Compose's label (made by the Engine-API applier) leaves the content hash: never equal to a
 * resolved one, so it is drift. One service whose containers disagree is `mixed`.
 */
export function observedHash(containers: readonly ContainerInspect[], key: string | undefined): { hash?: string; problem?: string } {
  const contents = new Set(containers.map((c) => c.Config.Labels?.[LABEL_CONFIG_HASH] ?? ""));
  if (contents.size > 1) return { hash: "mixed", problem: "containers carry different config hashes" };
  const content = [...contents][0];
  if (!content) return {};
  if (key === undefined) return { hash: content };
  const byService = new Map<string, Set<string>>();
  for (const c of containers) {
    const service = c.Config.Labels?.[LABEL_SERVICE] ?? "";
    const set = byService.get(service) ?? new Set<string>();
    set.add(c.Config.Labels?.[LABEL_COMPOSE_HASH] ?? "");
    byService.set(service, set);
  }
  const compose: Record<string, string> = {};
  for (const [service, set] of [...byService].sort(([a], [b]) => a.localeCompare(b))) {
    if (set.has("")) return { hash: content };
    if (set.size > 1) return { hash: "mixed", problem: `the containers of service ${service} carry different Compose config hashes` };
    compose[service] = [...set][0] as string;
  }
  return { hash: resolvedHash(key, content, compose) };
}

/** Pure: a stack's observation from its containers' inspect data. Never reads env. */
export function observeContainers(
  name: string,
  containers: ContainerInspect[],
  opts: { desiredHash?: string | undefined; desiredError?: string | undefined; stoppedByCommand: boolean; resolvedKey?: string | undefined },
): ServiceObservation {
  const o: ServiceObservation = { service: name, state: "stopped", health: "none", starts: containers.length > 0 ? 1 : 0, declared: true };
  if (opts.desiredHash) o.desired_config_hash = opts.desiredHash;
  const problems: string[] = [];
  if (opts.desiredError) problems.push(`spec side: ${opts.desiredError}`);
  if (containers.length > 0) {
    const running = containers.filter((c) => c.State.Running);
    const short = (c: ContainerInspect) => c.Name.replace(/^\//, "");
    if (running.length === containers.length) o.state = "running";
    else if (running.length > 0) {
      o.state = "failed";
      problems.push(`not running: ${containers.filter((c) => !c.State.Running).map((c) => `${short(c)} (${c.State.Status}, exit ${c.State.ExitCode})`).join(", ")}`);
    } else if (containers.every((c) => c.State.Status === "created")) o.state = "stopped";
    else {
      const exited = containers.find((c) => c.State.Status === "exited" || c.State.Status === "dead");
      o.state = opts.stoppedByCommand ? "stopped" : "exited";
      if (exited && !opts.stoppedByCommand) {
        o.exit_code = exited.State.ExitCode;
        problems.push(`${short(exited)} exited with code ${exited.State.ExitCode}`);
      }
    }
    if (o.state === "running") {
      // A paused container still runs (its process exists) but serves nothing: unhealthy, never down.
      const paused = running.filter((c) => c.State.Paused).map(short);
      o.health = paused.length ? "unhealthy" : worst(running.map(containerHealth));
      if (paused.length) problems.push(`paused: ${paused.join(", ")}`);
      const bad = running.filter((c) => !c.State.Paused && containerHealth(c) === "unhealthy").map(short);
      if (bad.length) problems.push(`unhealthy: ${bad.join(", ")}`);
    }
    o.restart_count = containers.reduce((n, c) => n + (c.RestartCount ?? 0), 0);
    const images = [...new Set(containers.map((c) => c.Image))].sort();
    if (images.length === 1) o.image_digest = images[0] as string;
    else o.image_digest = `combined:${hmacHex("steward-images", images.join(",")).slice(0, 32)}`;
    const seen = observedHash(containers, opts.resolvedKey);
    if (seen.hash) o.config_hash = seen.hash;
    if (seen.problem) problems.push(seen.problem);
  }
  if (problems.length) o.detail = problems.join("; ").slice(0, 2000);
  return o;
}

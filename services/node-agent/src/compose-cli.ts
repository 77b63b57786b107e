import { execFile } from "node:child_process";
import { mkdir, readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { parseDocument } from "yaml";
import { writeFileAtomic } from "@steward/platform/atomic-write";
import { LABEL_COMPOSE_HASH, LABEL_CONFIG_HASH, LABEL_STACK, type StackRevision } from "./compose-model.js";
import { contentHash, deployOrder } from "./compose-revision.js";
import { serviceOf, type StackApplier } from "./compose-apply.js";
import type { ComposeHasher, StackConfig } from "./compose-config.js";
import type { StackHealth } from "./compose-health.js";
import type { StackObserver } from "./compose-observe.js";
import type { ContainerInspect } from "./docker/types.js";
import { StackDeployError, type StackSettings } from "./compose-stack.js";

/** The Compose implementation found on the node: `docker compose` (v2 plugin) or `docker-compose` (v1). */
export interface ComposeCli {
  /** argv before Compose's own arguments: `["docker", "compose"]` or `["docker-compose"]`. */
  command: readonly string[];
  version: string;
  /** For logs: `docker compose 2.27.0`. */
  label: string;
}

type Run = (file: string, args: readonly string[], opts: { env: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number }) => Promise<{ code: number; stdout: string; stderr: string }>;

/** Runs a program; never rejects for a non-zero exit (its code and output are the answer). */
export const runProgram: Run = (file, args, opts) =>
  new Promise((res) => {
    execFile(file, [...args], { env: opts.env, cwd: opts.cwd, timeout: opts.timeoutMs, maxBuffer: 8 * 1024 * 1024, killSignal: "SIGKILL" }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string; killed?: boolean }) | null;
      if (!e) return res({ code: 0, stdout, stderr });
      const code = typeof e.code === "number" ? e.code : 127;
      res({ code, stdout, stderr: e.killed ? `${stderr}\n(killed after ${opts.timeoutMs} ms)` : stderr || e.message });
    });
  });

/** Pure: `2.27.0`, `v2.27.0`, `1.29.2` out of `version --short` (some builds add a newline or a `v`). */
export function parseComposeVersion(out: string): string | undefined {
  const m = /v?(\d+\.\d+\.\d+[^\s]*)/.exec(out.trim());
  return m?.[1];
}

/**
 * Which Compose to use: `docker compose` (v2) when the plugin answers, else `docker-compose` (v1), else none.
 * `env` carries DOCKER_HOST.
 */
export async function detectCompose(env: NodeJS.ProcessEnv, run: Run = runProgram): Promise<ComposeCli | undefined> {
  for (const command of [["docker", "compose"], ["docker-compose"]] as const) {
    const [file, ...pre] = command;
    const r = await run(file, [...pre, "version", "--short"], { env, timeoutMs: 20_000 });
    const version = r.code === 0 ? parseComposeVersion(r.stdout) : undefined;
    if (version) return { command, version, label: `${command.join(" ")} ${version}` };
  }
  return undefined;
}

/**
 * Pure: the override file Steward adds after the stack's own files, free of values: its labels (the revision's hash,
 * the stack) and the NAMES of the variables it adds to every container (env file, spec env), whose values Compose
 * takes from its own environment.
 */
export function overrideFile(r: Pick<StackRevision, "hash" | "content_hash" | "services">, stack: string, envKeys: readonly string[], version: string | undefined): string {
  const services: Record<string, unknown> = {};
  for (const name of Object.keys(r.services).sort()) {
    // The content hash: the revision's full identity includes Compose's hash of this very file.
    const svc: Record<string, unknown> = { labels: { [LABEL_CONFIG_HASH]: contentHash(r), [LABEL_STACK]: stack } };
    if (envKeys.length) svc["environment"] = [...envKeys].sort();
    services[name] = svc;
  }
  return JSON.stringify(version ? { version, services } : { services }, null, 2) + "\n";
}

/** Pure: Compose's arguments for one command on a stack. */
export function composeArgs(cli: Pick<ComposeCli, "command">, project: string, projectDir: string, files: readonly string[], envFile: string | null, verb: readonly string[]): { file: string; args: string[] } {
  const [file, ...pre] = cli.command as [string, ...string[]];
  const args = [...pre, "--project-name", project, "--project-directory", projectDir];
  for (const f of files) args.push("--file", f);
  if (envFile) args.push("--env-file", envFile);
  return { file, args: [...args, ...verb] };
}

/** Pure: the tail of Compose's output for an error, with every value Steward passed replaced (secrets never leave). */
export function redactedTail(text: string, values: readonly string[], max = 1500): string {
  let out = text;
  for (const v of values) if (v.length >= 4) out = out.split(v).join("***");
  out = out.trim();
  return out.length > max ? `…${out.slice(-max)}` : out;
}

/**
 * Pure: Compose's answer to `config --hash "*"` (one `service hash` per line, both versions) as hashes by service;
 * undefined when no line has that shape.
 */
export function parseConfigHashes(out: string): Record<string, string> | undefined {
  const hashes: Record<string, string> = {};
  for (const line of out.split("\n")) {
    const m = /^(\S+)\s+([0-9a-f]{64})$/.exec(line.trim());
    if (m) hashes[m[1] as string] = m[2] as string;
  }
  return Object.keys(hashes).length ? hashes : undefined;
}

/**
 * Pure: where the containers Compose just brought up disagree with what `config --hash` says of the same files, or
 * undefined when they agree. Some Compose releases hash differently for `config --hash` than for the label (v2.22
 * until the fix of docker/compose#14001 skips env resolution there; v2.23.0 printed nothing): Steward must not
 * report drift that Compose's own `up` would not act on.
 */
export function hashDisagreement(containers: readonly ContainerInspect[], hashes: Record<string, string>): string | undefined {
  for (const c of containers) {
    const service = serviceOf(c);
    if (!(service in hashes)) continue;
    const label = c.Config.Labels?.[LABEL_COMPOSE_HASH];
    if (label !== hashes[service]) return `service ${service}: its container's ${LABEL_COMPOSE_HASH} is ${label ? label.slice(0, 12) : "missing"}, config --hash says ${(hashes[service] as string).slice(0, 12)}`;
  }
  return undefined;
}

/** Where a Compose whose `config --hash` disagreed with its own labels is remembered (by its label), across restarts. */
const verdictPath = (stateDir: string) => join(stateDir, "compose", "config-hash-check.json");

/** Why this Compose's `config --hash` is not trusted, if it was found out before (its label, e.g. `docker compose 2.27.0`). */
export async function distrustedHashes(stateDir: string, label: string): Promise<string | undefined> {
  try {
    const doc = JSON.parse(await readFile(verdictPath(stateDir), "utf8")) as { unreliable?: Record<string, string> };
    return doc.unreliable?.[label];
  } catch {
    return undefined;
  }
}

export async function distrustHashes(stateDir: string, label: string, detail: string): Promise<void> {
  await mkdir(join(stateDir, "compose"), { recursive: true });
  await writeFileAtomic(verdictPath(stateDir), JSON.stringify({ version: 1, unreliable: { [label]: detail } }, null, 2));
}

export interface ComposeProjectDeps {
  cli: ComposeCli;
  /** DOCKER_HOST for Compose. */
  dockerHost: string;
  /** The stack's files of each revision are kept here, so a rollback applies the files it ran. */
  stateDir: string;
  run?: Run;
}

/** One stack revision laid out for Compose: its kept files, Steward's override, the arguments and environment. */
interface Prepared {
  projectDir: string;
  files: string[];
  env: Record<string, string>;
  procEnv: NodeJS.ProcessEnv;
}

/**
 * A stack revision as Compose sees it: the files of the revision (kept per content hash, so a rollback applies the
 * files it ran) plus Steward's override, the same for `config --hash` as for `up`, so the hashes agree.
 */
function composeProject(deps: ComposeProjectDeps) {
  const run = deps.run ?? runProgram;
  const revDir = (s: StackSettings, r: StackRevision) => join(deps.stateDir, "compose", s.name, contentHash(r).replace(/^sha256:/, "").slice(0, 16));

  /** Lays out `r` for Compose; `fromCheckout`: the checkout holds r's files now (they are kept), else the kept copy is used. */
  async function prepare(s: StackSettings, r: StackRevision, env: Record<string, string>, fromCheckout: boolean): Promise<Prepared> {
    const kept = revDir(s, r);
    if (fromCheckout) {
      for (const f of s.spec.files) {
        const dest = join(kept, "files", f);
        await mkdir(dirname(dest), { recursive: true });
        await writeFileAtomic(dest, await readFile(resolve(s.checkout, f)));
      }
    }
    const files = s.spec.files.map((f) => join(kept, "files", f));
    let version: string | undefined;
    try {
      const doc = parseDocument(await readFile(files[0] as string, "utf8")).toJS() as { version?: unknown } | null;
      if (typeof doc?.version === "string" || typeof doc?.version === "number") version = String(doc.version);
    } catch (err) {
      throw new StackDeployError(s.name, "config", `the files of revision ${r.hash} are not kept on this node (${(err as NodeJS.ErrnoException).code ?? "unreadable"}); they cannot be applied again`);
    }
    const override = join(kept, "steward.override.json");
    await writeFileAtomic(override, overrideFile(r, s.name, Object.keys(env), version));
    const procEnv: NodeJS.ProcessEnv = { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: process.env["HOME"] ?? "/root", DOCKER_HOST: deps.dockerHost, ...env };
    return { projectDir: resolve(s.checkout, dirname(s.spec.files[0] as string)), files: [...files, override], env, procEnv };
  }

  async function compose(s: StackSettings, r: StackRevision, p: Prepared, verb: readonly string[], timeoutMs: number) {
    const { file, args } = composeArgs(deps.cli, r.project, p.projectDir, p.files, r.env_file, verb);
    return run(file, args, { env: p.procEnv, cwd: p.projectDir, timeoutMs });
  }

  return { prepare, compose };
}

/**
 * Compose's own config hash of each service of the checkout's revision (`config --hash "*"`): what the containers'
 * `com.docker.compose.config-hash` labels say once that revision runs. It covers what interpolation makes of `.env`
 * and the environment, and (v1) the image the tag points at.
 */
export function createComposeHasher(deps: ComposeProjectDeps): ComposeHasher {
  const project = composeProject(deps);
  return async (s, r, env) => {
    const p = await project.prepare(s, r, env, true);
    const res = await project.compose(s, r, p, ["config", "--hash=*"], 60_000);
    if (res.code !== 0) throw new Error(`${deps.cli.label} config --hash (exit ${res.code}): ${redactedTail(res.stderr || res.stdout, Object.values(env), 600)}`);
    // Answered, but no hashes (Compose v2.23.0 prints nothing for `*`): none to trust.
    return parseConfigHashes(res.stdout);
  };
}

export interface CliApplierDeps extends ComposeProjectDeps {
  config: Pick<StackConfig, "desired" | "stackEnv">;
  observer: Pick<StackObserver, "containers">;
  health: Pick<StackHealth, "waitContainer">;
  /** Removal, stop and start of containers by id stay on the Engine API. */
  engine: StackApplier;
  /**
   * While Compose's hashes are part of the revision's identity: after a deploy, `config --hash` of the applied files
   * must reproduce the labels `up` wrote, else `unreliable` is told why (and drift falls back to the content hash).
   */
  resolved?: { active(): boolean; unreliable(detail: string): void };
  now?: () => number;
}

/** Deploys stacks with the real Compose: `up -d --remove-orphans` of the stack's files, then the container health gates. */
export function createCliApplier(deps: CliApplierDeps): StackApplier {
  const now = deps.now ?? Date.now;
  const project = composeProject(deps);

  return {
    ...deps.engine,
    async apply(s, r, deadline) {
      const env = await deps.config.stackEnv(s, r);
      const current = await deps.config.desired(s, { maxAgeMs: Number.POSITIVE_INFINITY }).catch(() => undefined);
      const p = await project.prepare(s, r, env, current !== undefined && contentHash(current) === contentHash(r));
      const res = await project.compose(s, r, p, ["up", "-d", "--remove-orphans"], Math.max(30_000, deadline - now()));
      if (res.code !== 0) throw new StackDeployError(s.name, "start", `${deps.cli.label} up (exit ${res.code}): ${redactedTail(res.stderr || res.stdout, Object.values(env))}`);
      const steps: string[] = [];
      const containers = await deps.observer.containers(s);
      for (const service of deployOrder(r.services)) {
        for (const c of containers.filter((x) => serviceOf(x) === service)) steps.push(await deps.health.waitContainer(s, c.Id, service, deadline));
      }
      if (deps.resolved?.active()) {
        const check = await project.compose(s, r, p, ["config", "--hash=*"], 60_000);
        const hashes = check.code === 0 ? parseConfigHashes(check.stdout) : undefined;
        const wrong = hashes ? hashDisagreement(await deps.observer.containers(s), hashes) : check.code === 0 ? "config --hash printed no hashes" : undefined;
        if (wrong) deps.resolved.unreliable(`stack ${s.name}: ${wrong}`);
      }
      return steps;
    },
  };
}

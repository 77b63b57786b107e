import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { parseDocument } from "yaml";
import { deployOrder, LABEL_CONFIG_HASH, LABEL_STACK, type StackRevision } from "./compose.js";
import { serviceOf, type StackApplier } from "./compose-apply.js";
import type { StackConfig } from "./compose-config.js";
import type { StackHealth } from "./compose-health.js";
import type { StackObserver } from "./compose-observe.js";
import { StackDeployError, type Stack } from "./compose-stack.js";

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
export function overrideFile(r: Pick<StackRevision, "hash" | "services">, stack: string, envKeys: readonly string[], version: string | undefined): string {
  const services: Record<string, unknown> = {};
  for (const name of Object.keys(r.services).sort()) {
    const svc: Record<string, unknown> = { labels: { [LABEL_CONFIG_HASH]: r.hash, [LABEL_STACK]: stack } };
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

export interface CliApplierDeps {
  cli: ComposeCli;
  /** DOCKER_HOST for Compose. */
  dockerHost: string;
  /** The stack's files of each applied revision are kept here, so a rollback applies the files it ran. */
  stateDir: string;
  config: Pick<StackConfig, "desired" | "stackEnv">;
  observer: Pick<StackObserver, "containers">;
  health: Pick<StackHealth, "waitContainer">;
  /** Removal, stop and start of containers by id stay on the Engine API. */
  engine: StackApplier;
  run?: Run;
  now?: () => number;
}

/** Deploys stacks with the real Compose: `up -d --remove-orphans` of the stack's files, then the container health gates. */
export function createCliApplier(deps: CliApplierDeps): StackApplier {
  const run = deps.run ?? runProgram;
  const now = deps.now ?? Date.now;
  const revDir = (s: Stack, r: StackRevision) => join(deps.stateDir, "compose", s.name, r.hash.replace(/^sha256:/, "").slice(0, 16));

  /** The files of `r`: the checkout's when they are that revision (kept for later), else the kept copy. */
  async function filesOf(s: Stack, r: StackRevision): Promise<{ files: string[]; version: string | undefined }> {
    const kept = revDir(s, r);
    const current = await deps.config.desired(s).catch(() => undefined);
    if (current?.hash === r.hash) {
      for (const f of s.spec.files) {
        const dest = join(kept, "files", f);
        await mkdir(dirname(dest), { recursive: true });
        await writeFile(dest, await readFile(resolve(s.checkout, f)));
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
    return { files, version };
  }

  return {
    ...deps.engine,
    async apply(s, r, deadline) {
      const env = await deps.config.stackEnv(s, r);
      const { files, version } = await filesOf(s, r);
      const override = join(revDir(s, r), "steward.override.json");
      await writeFile(override, overrideFile(r, s.name, Object.keys(env), version));
      const projectDir = resolve(s.checkout, dirname(s.spec.files[0] as string));
      const { file, args } = composeArgs(deps.cli, r.project, projectDir, [...files, override], r.env_file, ["up", "-d", "--remove-orphans"]);
      const procEnv: NodeJS.ProcessEnv = { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: process.env["HOME"] ?? "/root", DOCKER_HOST: deps.dockerHost, ...env };
      const res = await run(file, args, { env: procEnv, cwd: projectDir, timeoutMs: Math.max(30_000, deadline - now()) });
      if (res.code !== 0) throw new StackDeployError(s.name, "start", `${deps.cli.label} up (exit ${res.code}): ${redactedTail(res.stderr || res.stdout, Object.values(env))}`);
      const steps: string[] = [];
      const containers = await deps.observer.containers(s);
      for (const service of deployOrder(r.services)) {
        for (const c of containers.filter((x) => serviceOf(x) === service)) steps.push(await deps.health.waitContainer(s, c.Id, service, deadline));
      }
      return steps;
    },
  };
}

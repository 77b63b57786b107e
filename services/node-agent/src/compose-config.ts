import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { hmacHex } from "@steward/contracts/node-command";
import type { EnvValue, SecretRef } from "@steward/fleet/fleet-spec";
import { mergeComposeFiles } from "./compose-merge.js";
import { ComposeError, type StackRevision } from "./compose-model.js";
import { buildRevision, withComposeHashes } from "./compose-revision.js";
import { StackDeployError, type StackSettings } from "./compose-stack.js";
import { parseEnvFile } from "./env-file.js";

/** A stack's configuration from the deploy checkout: the revision the spec asks for, and the environment of its containers. */
export interface StackConfig {
  /**
   * The revision the spec asks for, computed from this node's deploy checkout (throws `ComposeError` naming the file).
   * Where Compose applies stacks its identity includes Compose's resolved config hashes (`config --hash "*"`, which
   * sees what interpolation makes of `.env` and the environment); those are reused when computed for the same
   * content and environment at most `maxAgeMs` ago (default 0: always asked again).
   */
  desired(s: StackSettings, opts?: { maxAgeMs?: number }): Promise<StackRevision>;
  /** The final environment of one container of `r`. Holds values: for the engine's create body only, never logged. */
  containerEnv(s: StackSettings, r: StackRevision, service: string): Promise<Record<string, string>>;
  /** What Steward adds to every container of `r`: the env file, then the spec's env (secrets resolved). Holds values. */
  stackEnv(s: StackSettings, r: StackRevision): Promise<Record<string, string>>;
}

export interface StackConfigDeps {
  node: string;
  /** Keys the env file digests: the config hash changes with a value without revealing it. */
  fleetKey: string;
  /** Resolves `{ secret: name }` env values; without it such values fail the deploy, naming the secret. */
  resolveSecret?: ((ref: SecretRef) => string | undefined) | undefined;
  /** True once the real Compose applies stacks: what only it can do (build, long syntax) is hashed, not refused. */
  lenient?: () => boolean;
  /** Compose's own resolved config hash of each service of `r` (the checkout's revision), once Compose applies stacks. */
  composeHashes?: () => ComposeHasher | undefined;
  now?: () => number;
}

/**
 * Asks Compose for the resolved config hash of each service of a revision; `env` is what Steward adds (holds values).
 * Undefined: this Compose gives no hashes to trust, the content hash stands alone.
 */
export type ComposeHasher = (s: StackSettings, r: StackRevision, env: Record<string, string>) => Promise<Record<string, string> | undefined>;

/** Pure: keyed digests of an env file's values, by key. The values are dropped here. */
export function envFileDigests(fleetKey: string, entries: Iterable<[string, string]>): Record<string, string> {
  const digests: Record<string, string> = {};
  for (const [k, v] of entries) digests[k] = hmacHex(fleetKey, `steward-env-file\u0000${k}\u0000${v}`).slice(0, 24);
  return digests;
}

export type RenderedEnv = { ok: true; env: Record<string, string> } | { ok: false; secret: string; key: string };

/**
 * Pure: a container's environment, later sources winning: compose's `environment`, then the env file, then the
 * spec's `env` (secret references resolved). The first secret that cannot be resolved fails it, by name.
 */
export function renderContainerEnv(compose: Record<string, string> | undefined, envFile: Iterable<[string, string]>, spec: Record<string, EnvValue>, resolveSecret: (ref: SecretRef) => string | undefined): RenderedEnv {
  const env: Record<string, string> = { ...compose };
  for (const [k, v] of envFile) env[k] = v;
  for (const [k, v] of Object.entries(spec)) {
    const value = typeof v === "string" ? v : resolveSecret(v);
    if (value === undefined) return { ok: false, secret: (v as SecretRef).secret, key: k };
    env[k] = value;
  }
  return { ok: true, env };
}

export function createStackConfig(deps: StackConfigDeps): StackConfig {
  const now = deps.now ?? Date.now;
  /** Compose's hashes per stack, for the content hash and environment they were computed for. */
  const resolved = new Map<string, { key: string; at: number; hashes: Record<string, string> }>();
  async function readText(s: StackSettings, rel: string): Promise<string> {
    try {
      return await readFile(resolve(s.checkout, rel), "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ComposeError(rel, code === "ENOENT" ? `not found in the deploy checkout ${s.checkout}` : `cannot read (${code ?? "error"})`);
    }
  }

  async function render(s: StackSettings, r: StackRevision, compose: Record<string, string> | undefined): Promise<Record<string, string>> {
    let envFile = new Map<string, string>();
    if (r.env_file) {
      try {
        envFile = parseEnvFile(await readFile(r.env_file, "utf8"));
      } catch (err) {
        throw new StackDeployError(s.name, "config", `env file ${r.env_file}: ${(err as NodeJS.ErrnoException).code ?? "unreadable"}`);
      }
    }
    const rendered = renderContainerEnv(compose, envFile, r.env, (ref) => deps.resolveSecret?.(ref));
    if (!rendered.ok) throw new StackDeployError(s.name, "config", `secret '${rendered.secret}' (for ${rendered.key}) cannot be resolved on node ${deps.node}`);
    return rendered.env;
  }

  return {
    async desired(s, opts) {
      const files = [];
      for (const f of s.spec.files) files.push({ path: f, text: await readText(s, f) });
      const services = mergeComposeFiles(files, { lenient: deps.lenient?.() ?? false });
      const envFile = s.spec.env_file ? resolve(s.checkout, s.spec.env_file) : null;
      const digests = s.spec.env_file ? envFileDigests(deps.fleetKey, parseEnvFile(await readText(s, s.spec.env_file))) : {};
      const base = buildRevision({ project: s.project, services, env: s.spec.env, env_file: envFile, env_file_digests: digests });
      const hasher = deps.composeHashes?.();
      if (!hasher) return base;
      const env = await render(s, base, undefined);
      // The environment's values (secrets) change Compose's hash too; they are keyed here, never kept.
      const key = `${base.hash}\u0000${hmacHex(deps.fleetKey, JSON.stringify(Object.entries(env).sort(([a], [b]) => a.localeCompare(b))))}`;
      const cached = resolved.get(s.name);
      if (cached?.key === key && now() - cached.at < (opts?.maxAgeMs ?? 0)) return withComposeHashes(deps.fleetKey, base, cached.hashes);
      const hashes = await hasher(s, base, env);
      if (!hashes) return base;
      resolved.set(s.name, { key, at: now(), hashes });
      return withComposeHashes(deps.fleetKey, base, hashes);
    },

    containerEnv: (s, r, service) => render(s, r, r.services[service]?.environment),
    stackEnv: (s, r) => render(s, r, undefined),
  };
}

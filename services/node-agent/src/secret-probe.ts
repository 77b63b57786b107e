import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { isPlaceholderSecret } from "@steward/platform/config";
import { secretStoreId, type FleetSpec, type SecretRef, type SecretStore } from "@steward/fleet/fleet-spec";
import { withSpan } from "@steward/platform/tracing";
import type { Logger } from "@steward/platform/logger";
import type { NodeEvent, SecretEvent } from "@steward/contracts/events";
import { parseEnvFile } from "./env-file.js";
import { newEventId } from "./publisher.js";

/**
 * Secret probe: for every store of every declared secret that lives on this node, a keyed fingerprint
 * of the value, never the value. Values are read inside `probeStore` (and `resolve`, which hands one to a
 * child process's environment) and go nowhere else: not into events, logs, errors or metrics.
 */

export type SecretStatus = SecretEvent["status"];

/** What the probe says about one store. */
export interface StoreReading {
  status: SecretStatus;
  fingerprint: string | null;
  detail?: string;
}

/** Label of the derived key, so fingerprints never use the command-signing key itself. */
export const FINGERPRINT_LABEL = "steward/secret-fingerprint/v1";
/** Bytes of HMAC-SHA256 kept: 16 bytes, 32 hex characters. */
export const FINGERPRINT_BYTES = 16;

/** The fingerprint key: HMAC-SHA256(fleet key, label). Every agent with the same fleet key derives the same one. */
export function fingerprintKey(fleetKey: string): Buffer {
  return createHmac("sha256", fleetKey).update(FINGERPRINT_LABEL).digest();
}

/** HMAC-SHA256(fingerprint key, value), hex, truncated to 16 bytes. */
export function fingerprint(key: Buffer, value: string): string {
  return createHmac("sha256", key).update(value, "utf8").digest().subarray(0, FINGERPRINT_BYTES).toString("hex");
}

/** Empty (or only whitespace), a placeholder, or a value: the one place a value turns into a reading. */
export function classifyValue(key: Buffer, value: string): StoreReading {
  if (value.trim() === "") return { status: "empty", fingerprint: null };
  if (isPlaceholderSecret(value)) return { status: "placeholder", fingerprint: fingerprint(key, value) };
  return { status: "ok", fingerprint: fingerprint(key, value) };
}

/** A whole-file secret: the file's content without its trailing newline(s). */
export function trimFileValue(text: string): string {
  return text.replace(/[\r\n]+$/, "");
}

/** Where a service runs, as far as the probe needs to know (from the agent's supervisor and drivers). */
export type ServiceLocation =
  | { kind: "process"; pid: number | undefined }
  /** A compose container or any service the process driver does not own. */
  | { kind: "other" }
  | { kind: "absent" };

/** Reads one variable from a container's environment (the docker driver); the result is kept inside the probe. */
export type ContainerEnvReader = (service: string, key: string) => Promise<{ found: true; value: string } | { found: false; status: "missing" | "unreadable"; detail: string }>;

export interface SecretProbeDeps {
  node: string;
  fleetKey: string;
  /** Directory of the fleet spec: relative paths resolve against the deploy checkout, or this directory without one. */
  specDir: string;
  logger: Logger;
  publish(event: NodeEvent): void;
  clock?: () => Date;
  /** How the agent runs a service of this node. */
  locate(service: string): ServiceLocation;
  /** The docker driver's reader, when the agent has one. */
  containerEnv?: ContainerEnvReader;
  /** Restate every store this often (ms). */
  probeMs: number;
  /** Look for changes this often (ms); only changes are published. */
  pollMs: number;
  /** /proc, replaceable in tests of non-Linux behaviour. */
  procRoot?: string;
}

export interface SecretProbe {
  /** The spec the agent now runs with (at start and after every valid reload). */
  setSpec(spec: FleetSpec): void;
  /** Probes at once, then on the timers. */
  start(): void;
  stop(): void;
  /** Probes every store now; `restate` publishes unchanged readings too. Resolves when done. */
  probeNow(restate?: boolean): Promise<void>;
  /** The readings last published, by `secret|store` (for tests and status). */
  readings(): ReadonlyMap<string, StoreReading>;
  /**
   * Resolves a `{ secret: name }` env value for a process this agent starts, from this node's stores of the
   * secret: `file` stores first, then `env_file`. Empty and placeholder values are skipped. Undefined when
   * none holds a usable value (the start then fails, naming the secret).
   */
  resolve(ref: SecretRef): string | undefined;
}

interface LocalStore {
  secret: string;
  store: SecretStore;
  id: string;
}

type Read = { ok: true; value: string } | { ok: false; status: "missing" | "unreadable"; detail: string };

const errCode = (err: unknown): string => (err as NodeJS.ErrnoException)?.code ?? "error";

/** A read error as a reading: a missing file is `missing`, anything else `unreadable`. Only the error code, never a message. */
function readError(err: unknown, what: string): Read {
  const code = errCode(err);
  if (code === "ENOENT" || code === "ENOTDIR") return { ok: false, status: "missing", detail: `${what} does not exist` };
  return { ok: false, status: "unreadable", detail: `cannot read ${what}: ${code}` };
}

export function createSecretProbe(deps: SecretProbeDeps): SecretProbe {
  const { node, logger } = deps;
  const key = fingerprintKey(deps.fleetKey);
  const clock = deps.clock ?? (() => new Date());
  const procRoot = deps.procRoot ?? "/proc";
  let stores: LocalStore[] = [];
  let baseDir = deps.specDir;
  const last = new Map<string, StoreReading>();
  const timers: NodeJS.Timeout[] = [];
  let chain: Promise<void> = Promise.resolve();
  let queued = 0;
  let stopped = false;

  const pathOf = (p: string) => resolve(baseDir, p);
  const readingKey = (s: LocalStore) => `${s.secret}|${s.id}`;

  function setSpec(spec: FleetSpec): void {
    const repo = spec.nodes[node]?.repo_path ?? spec.repo?.path;
    baseDir = resolve(deps.specDir, repo ?? ".");
    const next: LocalStore[] = [];
    for (const [secret, s] of Object.entries(spec.secrets)) {
      for (const store of s.stores) if (store.node === node) next.push({ secret, store, id: secretStoreId(store) });
    }
    stores = next;
    const keep = new Set(next.map(readingKey));
    for (const k of [...last.keys()]) if (!keep.has(k)) last.delete(k);
  }

  async function readEnvironKey(pid: number, name: string, varKey: string): Promise<Read> {
    let raw: Buffer;
    try {
      raw = await readFile(`${procRoot}/${pid}/environ`);
    } catch (err) {
      const code = errCode(err);
      if (code === "ENOENT") return { ok: false, status: "unreadable", detail: `service '${name}' (pid ${pid}) exited while being read` };
      return { ok: false, status: "unreadable", detail: `cannot read the environment of '${name}' (pid ${pid}): ${code}` };
    }
    const prefix = `${varKey}=`;
    let found: string | undefined;
    for (const entry of raw.toString("utf8").split("\0")) if (entry.startsWith(prefix)) found = entry.slice(prefix.length);
    if (found === undefined) return { ok: false, status: "missing", detail: `'${name}' runs without ${varKey} in its environment` };
    return { ok: true, value: found };
  }

  async function readStore(s: SecretStore): Promise<Read> {
    switch (s.type) {
      case "file":
        try {
          return { ok: true, value: trimFileValue(await readFile(pathOf(s.path), "utf8")) };
        } catch (err) {
          return readError(err, `file ${s.path}`);
        }
      case "env_file": {
        let text: string;
        try {
          text = await readFile(pathOf(s.path), "utf8");
        } catch (err) {
          return readError(err, `env file ${s.path}`);
        }
        const value = parseEnvFile(text).get(s.key);
        return value === undefined ? { ok: false, status: "missing", detail: `${s.key} is not set in ${s.path}` } : { ok: true, value };
      }
      case "service_env": {
        const where = deps.locate(s.service);
        switch (where.kind) {
          case "absent":
            return { ok: false, status: "missing", detail: `no service '${s.service}' on node '${node}'` };
          case "process":
            if (where.pid === undefined) return { ok: false, status: "unreadable", detail: `service '${s.service}' is not running: its environment cannot be read` };
            return readEnvironKey(where.pid, s.service, s.key);
          case "other": {
            if (!deps.containerEnv) return { ok: false, status: "unreadable", detail: `'${s.service}' is not a process service and this agent has no docker driver to read container environments` };
            try {
              const r = await deps.containerEnv(s.service, s.key);
              return r.found ? { ok: true, value: r.value } : { ok: false, status: r.status, detail: r.detail };
            } catch (err) {
              return { ok: false, status: "unreadable", detail: `cannot read the container environment of '${s.service}': ${errCode(err)}` };
            }
          }
          default: {
            const never: never = where;
            return never;
          }
        }
      }
      default: {
        const never: never = s;
        return never;
      }
    }
  }

  /** The only function the probe reads a value in: it becomes a reading here and is dropped. */
  async function probeStore(s: LocalStore): Promise<StoreReading> {
    const r = await readStore(s.store);
    if (!r.ok) return { status: r.status, fingerprint: null, detail: r.detail.slice(0, 500) };
    return classifyValue(key, r.value);
  }

  async function runProbe(restate: boolean): Promise<void> {
    if (stores.length === 0) return;
    await withSpan("probe.secret", { attributes: { "steward.secret_stores": stores.length } }, async () => {
      for (const s of stores) {
        if (stopped) return;
        const reading = await probeStore(s);
        const k = readingKey(s);
        const prev = last.get(k);
        const changed = !prev || prev.status !== reading.status || prev.fingerprint !== reading.fingerprint || prev.detail !== reading.detail;
        if (!changed && !restate) continue;
        last.set(k, reading);
        if (changed) {
          const fields = { secret_name: s.secret, store: s.id, status: reading.status, detail: reading.detail };
          if (reading.status === "ok") logger.info(fields, prev ? "secret store changed" : "secret store read");
          else logger.warn(fields, "secret store is not ok");
        }
        const event: SecretEvent = { type: "secret", id: newEventId(node), node, ts: clock().toISOString(), secret: s.secret, store: s.id, status: reading.status, fingerprint: reading.fingerprint };
        if (reading.detail) event.detail = reading.detail;
        deps.publish(event);
      }
    });
  }

  function probeNow(restate = false): Promise<void> {
    // Serialized, and at most one waiting: a slow disk cannot pile probes up.
    if (queued > 1 && !restate) return chain;
    queued++;
    chain = chain
      .then(() => runProbe(restate))
      .catch((err: unknown) => logger.error({ err: (err as Error).message }, "secret probe failed"))
      .finally(() => queued--);
    return chain;
  }

  function readSync(s: SecretStore): string | undefined {
    try {
      if (s.type === "file") return trimFileValue(readFileSync(pathOf(s.path), "utf8"));
      if (s.type === "env_file") return parseEnvFile(readFileSync(pathOf(s.path), "utf8")).get(s.key);
    } catch {
      // Reported by the probe with its reason; here it is only "not usable".
    }
    return undefined;
  }

  const SOURCE_ORDER: Record<SecretStore["type"], number> = { file: 0, env_file: 1, service_env: 2 };

  return {
    setSpec,
    start() {
      void probeNow(true);
      const t1 = setInterval(() => void probeNow(false), deps.pollMs);
      const t2 = setInterval(() => void probeNow(true), deps.probeMs);
      t1.unref();
      t2.unref();
      timers.push(t1, t2);
    },
    stop() {
      stopped = true;
      for (const t of timers) clearInterval(t);
    },
    probeNow,
    readings: () => last,
    resolve(ref) {
      const candidates = stores
        .filter((s) => s.secret === ref.secret && s.store.type !== "service_env")
        .sort((a, b) => SOURCE_ORDER[a.store.type] - SOURCE_ORDER[b.store.type]);
      for (const c of candidates) {
        const value = readSync(c.store);
        if (value === undefined) continue;
        const verdict = classifyValue(key, value);
        if (verdict.status === "ok") return value;
        logger.warn({ secret_name: ref.secret, store: c.id, status: verdict.status }, "not using this store for a service's environment");
      }
      return undefined;
    },
  };
}

/**
 * When the executor does not answer, `steward status` and `steward drift` still do: they read the world store and
 * the drift report straight from NATS through their owner (libs/world). Loaded only on that fallback, so a CLI that
 * reaches the API never loads the NATS client.
 */
import type { DriftReport } from "@steward/contracts/drift";
import type { Snapshot } from "@steward/contracts/world-state";
import { connectNats, openWorldBucket, type KV } from "@steward/platform/bus";
import { natsAuthFromEnv, natsCaFileFromEnv, type NatsAuth } from "@steward/platform/nats-auth";
import { redactUrl } from "@steward/platform/redact";
import { ApiError, type ApiUnreachable } from "@steward/platform/http-client";
import { readDrift } from "@steward/world/drift-store";
import { readWorld } from "@steward/world/world-store";
import { readStackFile } from "./stack-file.js";

const CONNECT_TIMEOUT_MS = 3_000;
const READ_TIMEOUT_MS = 10_000;

/**
 * Where the world store is and who reads it: STEWARD_NATS_URL with the CLI's seed from NATS_NKEY_SEED_FILE /
 * NATS_NKEY_SEED, else the stack file `steward up` wrote (its URL and the CLI's seed file).
 */
export async function worldStore(env: NodeJS.ProcessEnv): Promise<{ url: string; auth: NatsAuth | undefined; caFile: string | undefined } | undefined> {
  if (env["STEWARD_NATS_URL"]) return { url: env["STEWARD_NATS_URL"], auth: natsAuthFromEnv(env), caFile: natsCaFileFromEnv(env) };
  const stack = await readStackFile(env);
  if (!stack) return undefined;
  return {
    url: stack.nats_url,
    auth: stack.nats_seed_file ? natsAuthFromEnv({ NATS_NKEY_SEED_FILE: stack.nats_seed_file }) : undefined,
    caFile: stack.nats_ca_file ? natsCaFileFromEnv({ NATS_CA_FILE: stack.nats_ca_file }) : undefined,
  };
}

/** What the operator is told (on stderr, so `--json` stays one document) when the answer came from the store. */
export const directNote = (unreachable: ApiUnreachable, natsUrl: string): string =>
  `note: the Steward API (executor) at ${unreachable.url} is not answering (${unreachable.reason}); this was read from the world store directly (${natsUrl}). Actions cannot be approved, rejected or listed right now.`;

async function withWorldStore<T>(env: NodeJS.ProcessEnv, unreachable: ApiUnreachable, read: (kv: KV) => Promise<{ ok: true; value: T } | { ok: false; detail: string }>): Promise<{ value: T; note: string }> {
  const both = (why: string) => new ApiError(0, "unreachable", `${unreachable.message}; and the world store ${why}`);
  const store = await worldStore(env).catch((err: unknown) => {
    // A seed or CA file that is gone (the stack stopped) or unusable: said as such, never its content.
    throw both(`cannot be read as this CLI's NATS identity: ${(err as Error).message.replace(/^[^\n]*\n\s*/, "")}`);
  });
  if (!store) throw both("is not configured either (set STEWARD_NATS_URL, or run `steward up`)");
  const url = redactUrl(store.url);
  const nc = await connectNats(store.url, "steward-cli", { timeout: CONNECT_TIMEOUT_MS, maxReconnectAttempts: 0, reconnect: false, ...(store.caFile ? { tls: { caFile: store.caFile } } : {}) }, store.auth ?? null).catch((err: unknown) => {
    throw both(`at ${url} cannot be reached either (${(err as Error).message})`);
  });
  try {
    const r = await read(await openWorldBucket(nc, 1, { waitForOwnerMs: 2_000 }));
    if (!r.ok) throw both(`at ${url} could not be read: ${r.detail}`);
    return { value: r.value, note: directNote(unreachable, url) };
  } finally {
    await nc.close().catch(() => undefined);
  }
}

/** The world as the observer last wrote it, read from NATS. */
export const readWorldDirect = (env: NodeJS.ProcessEnv, unreachable: ApiUnreachable): Promise<{ value: Snapshot; note: string }> =>
  withWorldStore(env, unreachable, (kv) => readWorld(kv, READ_TIMEOUT_MS, 2_000));

/** The supervisor's last drift report, read from NATS. */
export const readDriftDirect = (env: NodeJS.ProcessEnv, unreachable: ApiUnreachable): Promise<{ value: DriftReport; note: string }> =>
  withWorldStore(env, unreachable, (kv) => readDrift(kv, READ_TIMEOUT_MS));

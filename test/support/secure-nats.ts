/**
 * NATS as the end-to-end tests run it: TLS on client connections and one nkey user per node-agent and component,
 * with the permissions `@steward/contracts/nats-permissions` derives (the same table a deployment runs), so a
 * permission a service lacks fails its test. The certificates come from the one cert maker, `steward up`'s
 * `makeLocalTls`, made once per run by the global setup (tls-setup.ts) and removed after the last test file.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeLocalTls, natsTlsConfig, type LocalTls } from "@steward/cli";
import { connectNats, type NatsConnection } from "@steward/platform/bus";
import { natsAuthFromEnv, natsCaFileFromEnv, newNatsUserKey, planNatsUsers, renderNatsAuthorization, type NatsUser } from "@steward/platform/nats-auth";
import { NATS_COMPONENTS } from "@steward/contracts/nats-permissions";

/**
 * The test's own identity (the tap connection `stack.nc`). Not a Steward component and never in a deployment, so it
 * is not in the contracts' table: it plays the fleet's nodes that no agent runs (publishes their events), creates
 * the streams for tests that run no observer, and watches any subject and the KV store to assert on. Those are
 * every subject of the system, so it may publish and subscribe to everything; the services never use it.
 */
export const TEST_HARNESS_IDENTITY = "test-harness";

let tls: LocalTls | undefined;

/** Where the run's global setup (tls-setup.ts) says which CA and server certificate every test file shares. */
export const TEST_TLS_ENV = "STEWARD_TEST_TLS";

/**
 * The run's CA and server certificate (made once by tls-setup.ts); a test process started without that setup makes
 * its own on first use (two openssl runs) and removes it at exit.
 */
export function testTls(): LocalTls {
  if (tls) return tls;
  const shared = process.env[TEST_TLS_ENV];
  if (shared) return (tls = JSON.parse(shared) as LocalTls);
  const dir = mkdtempSync(join(tmpdir(), "steward-test-tls-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  const made = makeLocalTls(dir);
  if ("missing" in made) throw new Error(`end-to-end tests run NATS with TLS and need openssl: ${made.missing}`);
  return (tls = made.tls);
}

export interface NatsSecurity {
  /** What the server config adds: the `authorization` block (every identity's public key) and the `tls` block. */
  config: string;
  /** Undefined with `tls: false`. */
  caFile: string | undefined;
  /** The services' and nodes' users (the contracts' permissions); the harness is not among them. */
  users: NatsUser[];
  /** An identity's settings as a service reads them: its seed file (NATS_NKEY_SEED_FILE) and NATS_CA_FILE. */
  env(name: string): Record<string, string>;
  /** Connects as `name` the way a service's main.ts does: `connectNats` with the identity and CA from `env(name)`. */
  connect(url: string, name: string, connectionName?: string, opts?: Parameters<typeof connectNats>[2]): Promise<NatsConnection>;
  /** Removes the seed files. */
  remove(): Promise<void>;
}

/**
 * Identities for these nodes (`node.<name>`), every component and the test harness, with a fresh key each, their
 * seeds in files (0600) in a temp dir of their own. `tls: false` only for a test that must read the plaintext
 * protocol on the wire.
 */
export async function natsSecurity(nodes: readonly string[], o: { tls?: boolean } = {}): Promise<NatsSecurity> {
  const t = o.tls === false ? undefined : testTls();
  const dir = await mkdtemp(join(tmpdir(), "steward-test-nkeys-"));
  const users: NatsUser[] = planNatsUsers(nodes, NATS_COMPONENTS, () => newNatsUserKey());
  const harness = { name: TEST_HARNESS_IDENTITY, ...newNatsUserKey(), permissions: { publish: [">"], subscribe: [">"], allowResponses: true } };
  const all = [...users, harness];
  await Promise.all(all.map((u) => writeFile(join(dir, `${u.name}.nk`), `${u.seed}\n`, { mode: 0o600 })));
  const names = new Set(all.map((u) => u.name));
  const env = (name: string): Record<string, string> => {
    if (!names.has(name)) throw new Error(`no NATS identity ${name} in this test's server config (a node needs to be listed when the stack starts)`);
    return { NATS_NKEY_SEED_FILE: join(dir, `${name}.nk`), ...(t ? { NATS_CA_FILE: t.caFile } : {}) };
  };
  return {
    config: `${renderNatsAuthorization(all)}\n${t ? natsTlsConfig(t) : ""}`,
    caFile: t?.caFile,
    users,
    env,
    async connect(url, name, connectionName = `${name}-test`, opts = {}) {
      const e = env(name);
      const caFile = natsCaFileFromEnv(e);
      // A minute to connect, not the client's 20 s: a TLS handshake per connection on a 2-core machine running other
      // suites timed out once (fleet-scale, load average 18).
      return connectNats(url, connectionName, { timeout: 60_000, ...(caFile ? { tls: { caFile } } : {}), ...opts }, natsAuthFromEnv(e) ?? null);
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

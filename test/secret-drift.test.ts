/**
 * Secret drift end to end, with real files, a real process and real services in this process:
 * two node-agents (nodes a and b) fingerprint one secret in an env file, a file and a running process's
 * environment on a, and a file on b; the observer folds their events, the supervisor flags disagreement,
 * empty, placeholder and missing stores. Then: no secret value appears in any NATS message, any log line,
 * any snapshot, any drift report or any row in Postgres.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DriftReport } from "@steward/contracts/drift";
import { readDrift } from "@steward/world/drift-store";
import { Snapshot } from "@steward/contracts/world-state";
import { openWorldBucket, type KV, type NatsConnection } from "@steward/platform/bus";
import type { NodeAgent } from "@steward/node-agent";
import { actionTablesAsText } from "@steward/actions/testing";
import { waitFor } from "@steward/testkit";
import { startStack, type Stack } from "./support/stack.js";
import { TEST_HARNESS_IDENTITY } from "./support/secure-nats.js";

/** Distinctive random values: if any of them shows up anywhere, it leaked. */
const VALUE = `sv1-${randomBytes(16).toString("hex")}`;
const OTHER = `sv2-${randomBytes(16).toString("hex")}`;
const B_ONLY = `sv3-${randomBytes(16).toString("hex")}`;
const ALL_VALUES = [VALUE, OTHER, B_ONLY];

let stack: Stack;
let dir = "";
let tap: NatsConnection;
let kv: KV;
let agentA: NodeAgent;
/** Everything that could carry a value: every NATS message, every log line, every snapshot and drift report read. */
const captured: { nats: string[]; logs: string[]; snapshots: string[]; reports: string[] } = { nats: [], logs: [], snapshots: [], reports: [] };

const STORE_A_ENV = "a/env_file:.env#DB_PASSWORD";
const STORE_A_FILE = "a/file:secrets/db";
const STORE_A_SVC = "a/service_env:app#DB_PASSWORD";
const STORE_B_FILE = "b/file:secrets/db";

const fleetYaml = `version: 1
secrets:
  db_password:
    description: the app's database password
    stores:
      - { type: env_file, node: a, path: .env, key: DB_PASSWORD }
      - { type: file, node: a, path: secrets/db }
      - { type: service_env, node: a, service: app, key: DB_PASSWORD }
      - { type: file, node: b, path: secrets/db }
  b_only:
    stores:
      - { type: file, node: b, path: secrets/b_only }
nodes:
  a:
    repo_path: a
    services:
      app:
        kind: process
        command: [${JSON.stringify(process.execPath)}, "-e", "setInterval(() => {}, 1000)"]
        env:
          DB_PASSWORD: { secret: db_password }
          MODE: test
      needs-b:
        kind: process
        command: [${JSON.stringify(process.execPath)}, "-e", "setInterval(() => {}, 1000)"]
        env:
          TOKEN: { secret: b_only }
  b:
    repo_path: b
`;

function bufferLogger() {
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      captured.logs.push(chunk.toString());
      cb();
    },
  });
  return pino({ level: "trace" }, sink);
}

async function latestReport(): Promise<DriftReport | undefined> {
  const r = await readDrift(kv);
  if (!r.ok) return undefined;
  captured.reports.push(JSON.stringify(r.value));
  return r.value;
}

async function readSnapshot(): Promise<Snapshot | undefined> {
  const text = await readFile(join(dir, "world.json"), "utf8").catch(() => undefined);
  if (!text) return undefined;
  captured.snapshots.push(text);
  return Snapshot.parse(JSON.parse(text));
}

/** The drift report's secret drift for db_password, once the report reflects a world where `ready` holds. */
async function secretDriftWhen(what: string, ready: (s: Snapshot) => boolean): Promise<string | null> {
  const seq = await waitFor(`snapshot: ${what}`, async () => {
    const s = await readSnapshot();
    return s && ready(s) ? s.world.last_seq : undefined;
  }, 20_000, 100);
  const report = await waitFor(`drift report after seq ${seq}`, async () => {
    const r = await latestReport();
    return r && r.skipped === null && r.world_seq >= seq ? r : undefined;
  }, 20_000, 100);
  return report.drifts.find((d) => d.key === "secret_drift:*/db_password")?.message ?? null;
}

type Stores = NonNullable<Snapshot["world"]["nodes"][string]["secrets"]>[string];
const storesOf = (s: Snapshot): Stores => ({
  ...Object.fromEntries(Object.entries(s.world.nodes["a"]?.secrets?.["db_password"] ?? {}).map(([k, v]) => [`a/${k}`, v])),
  ...Object.fromEntries(Object.entries(s.world.nodes["b"]?.secrets?.["db_password"] ?? {}).map(([k, v]) => [`b/${k}`, v])),
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "steward-secret-drift-"));
  await mkdir(join(dir, "a", "secrets"), { recursive: true });
  await mkdir(join(dir, "b", "secrets"), { recursive: true });
  await writeFile(join(dir, "a", ".env"), `# rendered by the deploy\nexport DB_PASSWORD="${VALUE}"\nOTHER_SETTING=1\n`);
  await writeFile(join(dir, "a", "secrets", "db"), `${VALUE}\n`);
  await writeFile(join(dir, "b", "secrets", "db"), `${VALUE}\n`);
  await writeFile(join(dir, "b", "secrets", "b_only"), `${B_ONLY}\n`);

  const logger = bufferLogger();
  const agent = { HEARTBEAT_MS: "500", SECRET_POLL_MS: "200", SECRET_PROBE_MS: "2000" };
  stack = await startStack({
    dir,
    dbPrefix: "steward_secrets",
    fleet: fleetYaml,
    logger: (service) => logger.child({ svc: service }),
    // Tap every subject before any service publishes.
    async beforeServices({ connectAs }) {
      tap = await connectAs(TEST_HARNESS_IDENTITY);
      tap.subscribe(">", {
        callback: (_err, msg) => {
          if (!msg) return;
          const headers = msg.headers ? [...msg.headers.keys()].map((k) => `${k}: ${msg.headers?.get(k)}`).join("\n") : "";
          captured.nats.push(`${msg.subject}\n${headers}\n${new TextDecoder().decode(msg.data)}`);
        },
      });
      await tap.flush();
    },
    observer: true,
    supervisor: { RECHECK_MS: "300" },
    agents: { a: agent, b: agent },
  });
  kv = await openWorldBucket(stack.nc);
  agentA = stack.agents["a"]!;
});

afterAll(async () => {
  await tap?.close();
  await stack?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("secret drift across two nodes", () => {
  it("a process gets its secret from this node's store; one whose secret lives only elsewhere does not start", async () => {
    const app = await waitFor("app running", () => agentA.status().find((s) => s.service === "app" && s.state === "running"));
    expect(app.pid).toBeGreaterThan(0);
    const env = await readFile(`/proc/${app.pid}/environ`, "utf8");
    expect(env.split("\0")).toContain(`DB_PASSWORD=${VALUE}`);
    const needsB = agentA.status().find((s) => s.service === "needs-b");
    expect(needsB).toMatchObject({ state: "failed" });
    expect(needsB?.detail).toContain("secret 'b_only' (for TOKEN) is not available on this node");
  });

  it("env file, file and the running process's environment on a, and a file on b, all equal: no drift", async () => {
    const message = await secretDriftWhen("all four stores ok and equal", (s) => {
      const st = Object.values(storesOf(s));
      return st.length === 4 && st.every((x) => x.status === "ok") && new Set(st.map((x) => x.fingerprint)).size === 1;
    });
    expect(message).toBeNull();
  });

  it("one store changed: drift names which stores agree with which", async () => {
    await writeFile(join(dir, "b", "secrets", "db"), `${OTHER}\n`);
    const message = await secretDriftWhen("b's store differs", (s) => {
      const st = storesOf(s);
      return st[STORE_B_FILE]?.status === "ok" && st[STORE_B_FILE]?.fingerprint !== st[STORE_A_FILE]?.fingerprint;
    });
    expect(message).toBe(`secret db_password: stores disagree (2 different values): {${STORE_A_ENV}, ${STORE_A_FILE}, ${STORE_A_SVC}} vs {${STORE_B_FILE}}`);
  });

  it("an empty store is flagged", async () => {
    await writeFile(join(dir, "b", "secrets", "db"), "\n");
    const message = await secretDriftWhen("b's store empty", (s) => storesOf(s)[STORE_B_FILE]?.status === "empty");
    expect(message).toContain(`empty in ${STORE_B_FILE}`);
    expect(message).not.toContain("disagree");
  });

  it("`changeme` is flagged as a placeholder", async () => {
    await writeFile(join(dir, "b", "secrets", "db"), "changeme\n");
    const message = await secretDriftWhen("b's store a placeholder", (s) => storesOf(s)[STORE_B_FILE]?.status === "placeholder");
    expect(message).toContain(`placeholder value in ${STORE_B_FILE}`);
  });

  it("a key missing from the env file is flagged missing", async () => {
    await writeFile(join(dir, "b", "secrets", "db"), `${VALUE}\n`);
    await writeFile(join(dir, "a", ".env"), "OTHER_SETTING=1\n");
    const message = await secretDriftWhen("a's env file lacks the key and b is back", (s) => storesOf(s)[STORE_A_ENV]?.status === "missing" && storesOf(s)[STORE_B_FILE]?.status === "ok");
    expect(message).toBe(`secret db_password: missing from ${STORE_A_ENV} (DB_PASSWORD is not set in .env); agreeing: ${STORE_A_FILE}, ${STORE_A_SVC}, ${STORE_B_FILE}`);
  });

  it("put back, the drift clears", async () => {
    await writeFile(join(dir, "a", ".env"), `DB_PASSWORD='${VALUE}'\n`);
    const message = await secretDriftWhen("every store ok again", (s) => Object.values(storesOf(s)).every((x) => x.status === "ok"));
    expect(message).toBeNull();
  });

  it("no secret value appears in any NATS message, log line, snapshot, drift report or database row", async () => {
    const dbText = await actionTablesAsText(stack.sql);
    await readSnapshot();
    // The captures are real: they saw the secret events, the logs, the snapshots and the reports.
    expect(captured.nats.some((m) => m.startsWith("steward.events.a.secret"))).toBe(true);
    expect(captured.nats.some((m) => m.includes("secret_drift"))).toBe(true);
    expect(captured.logs.some((l) => l.includes("secret store"))).toBe(true);
    expect(captured.snapshots.length).toBeGreaterThan(0);
    expect(captured.reports.some((r) => r.includes("secret_drift"))).toBe(true);
    const haystacks: [string, string[]][] = [
      ["nats", captured.nats],
      ["logs", captured.logs],
      ["snapshots", captured.snapshots],
      ["drift reports", captured.reports],
      ["database", [dbText]],
    ];
    for (const [where, texts] of haystacks) {
      for (const v of ALL_VALUES) {
        const hits = texts.filter((t) => t.includes(v)).length;
        expect(hits, `a secret value appeared in ${where}`).toBe(0);
      }
    }
  });
});

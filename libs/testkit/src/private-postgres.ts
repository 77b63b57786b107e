import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chownSync, existsSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { freePort, stopProcess, waitFor } from "./index.js";

/**
 * A PostgreSQL cluster of the test's own, for tests that stop and restart the database under the services (the
 * shared server on 5432 must never be restarted by a test). Same data directory and port across restarts.
 */
export interface PrivatePostgres {
  /** Database `steward` on the cluster. */
  url: string;
  port: number;
  /** Fast shutdown (what `pg_ctl stop -m fast` and a package upgrade do): every connection is terminated. */
  down(): Promise<void>;
  /** Start again on the same data and port; resolves once it accepts connections. */
  up(): Promise<void>;
  stop(): Promise<void>;
}

function serverBin(): string {
  const dirs = existsSync("/usr/lib/postgresql") ? readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a)).map((v) => `/usr/lib/postgresql/${v}/bin`) : [];
  if (process.env["PG_BIN"]) dirs.unshift(process.env["PG_BIN"]);
  const hit = dirs.find((d) => existsSync(join(d, "initdb")) && existsSync(join(d, "postgres")));
  if (!hit) throw new Error("PostgreSQL server binaries (initdb, postgres) not found: install Debian's postgresql or set PG_BIN");
  return hit;
}

/** PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` system user. */
function runAs(): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  return { uid: Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" })), gid: Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" })) };
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = serverBin();
  const ids = runAs();
  const dir = await mkdtemp(join(tmpdir(), "steward-private-pg-"));
  if (ids.uid !== undefined && ids.gid !== undefined) chownSync(dir, ids.uid, ids.gid);
  const data = join(dir, "data");
  execFileSync(join(bin, "initdb"), ["-D", data, "-U", "steward", "--auth=trust", "-E", "UTF8", "--no-sync"], { stdio: ["ignore", "ignore", "pipe"], cwd: dir, ...ids });
  const port = await freePort();
  let proc: ChildProcess | undefined;
  let log = "";

  async function up(): Promise<void> {
    log = "";
    proc = spawn(join(bin, "postgres"), ["-D", data, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-k", dir, "-c", "fsync=off"], { stdio: ["ignore", "ignore", "pipe"], cwd: dir, ...ids });
    const p = proc;
    p.stderr?.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-10_000)));
    await waitFor(`private PostgreSQL on port ${port}`, () => {
      if (p.exitCode !== null) throw new Error(`postgres exited with ${p.exitCode}: ${log}`);
      return log.includes("ready to accept connections");
    }, 30_000, 25);
  }

  await up();
  const admin = postgres(`postgres://steward@127.0.0.1:${port}/postgres`, { max: 1, onnotice: () => undefined });
  await admin.unsafe("CREATE DATABASE steward");
  await admin.end();

  return {
    url: `postgres://steward@127.0.0.1:${port}/steward`,
    port,
    up,
    async down() {
      // SIGINT is PostgreSQL's fast shutdown: sessions are terminated with 57P01, as on a restart.
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const p = proc;
      const exited = new Promise((r) => p.once("exit", r));
      p.kill("SIGINT");
      await exited;
    },
    async stop() {
      if (proc) await stopProcess(proc, 10_000);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

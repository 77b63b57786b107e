import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { STACK_ID_ENV } from "@steward/platform/stack-member";
import { freeLoopbackPort } from "./free-port.js";

export class LocalPostgresError extends Error {
  override name = "LocalPostgresError";
}

/** Finds initdb/postgres: PG_BIN, then `pg_config --bindir`, then Debian's /usr/lib/postgresql/<ver>/bin. */
export function findPostgresBin(env: NodeJS.ProcessEnv = process.env): string {
  const candidates: string[] = [];
  if (env["PG_BIN"]) candidates.push(env["PG_BIN"]);
  try {
    candidates.push(execFileSync("pg_config", ["--bindir"], { encoding: "utf8" }).trim());
  } catch {
    /* not installed */
  }
  if (existsSync("/usr/lib/postgresql")) {
    for (const v of readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a))) candidates.push(`/usr/lib/postgresql/${v}/bin`);
  }
  const hit = candidates.find((d) => existsSync(join(d, "initdb")) && existsSync(join(d, "postgres")));
  if (!hit) throw new LocalPostgresError("PostgreSQL server binaries not found (initdb, postgres). Install them (Debian: apt-get install postgresql) or set DATABASE_URL.");
  return hit;
}

function runAsIds(): { uid?: number; gid?: number } {
  // PostgreSQL refuses to run as root; use the `postgres` system user when we are root.
  if (process.getuid?.() !== 0) return {};
  try {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    return { uid, gid };
  } catch {
    throw new LocalPostgresError("running as root and there is no `postgres` user to run PostgreSQL as; create one or set DATABASE_URL");
  }
}

export interface LocalPostgres {
  url: string;
  proc: ChildProcess;
  stop(): Promise<void>;
  /** Removes the cluster's files when they live outside the stack dir (as root); after stop. */
  remove(): void;
}

/** The cluster lives as long as the stack: no fsync, so the shutdown checkpoint does not wait on the disk. */
const THROWAWAY = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"];

/** PostgreSQL cannot bind port 0; up picks a free port and retries with another when someone took it meanwhile. */
const PORT_ATTEMPTS = 5;

/**
 * A throwaway cluster: initdb, listen on 127.0.0.1, trust auth, database `steward`. PostgreSQL cannot bind port 0,
 * so the gap between picking a port and binding it is closed the other way: the cluster is named after the stack
 * (`cluster_name`) and `up` only accepts the server that answers with that name; when the port was taken meanwhile,
 * postgres exits and `up` tries another port.
 * As root the cluster lives in its own temp dir owned by `postgres` (it cannot reach into root's 0700 dirs).
 */
export async function startLocalPostgres(dir: string, logFile: string, stackId: string): Promise<LocalPostgres> {
  const bin = findPostgresBin();
  const ids = runAsIds();
  const asOther = ids.uid !== undefined && ids.gid !== undefined;
  if (asOther) dir = mkdtempSync(join(tmpdir(), "steward-pg-"));
  const data = join(dir, "data");
  mkdirSync(data, { recursive: true, mode: 0o700 });
  if (ids.uid !== undefined && ids.gid !== undefined) {
    chownSync(dir, ids.uid, ids.gid);
    chownSync(data, ids.uid, ids.gid);
  }
  try {
    execFileSync(join(bin, "initdb"), ["-D", data, "-U", "steward", "--auth=trust", "-E", "UTF8", "--no-sync", "--wal-segsize=1"], { stdio: ["ignore", "ignore", "pipe"], cwd: dir, ...ids });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? "").trim();
    throw new LocalPostgresError(`initdb failed: ${stderr || (err as Error).message}`);
  }
  writeFileSync(logFile, "");
  if (ids.uid !== undefined && ids.gid !== undefined) chownSync(logFile, ids.uid, ids.gid);
  const clusterName = `steward-${stackId}`;
  let lastError = "";
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    const port = await freeLoopbackPort();
    const logFd = openSync(logFile, "a");
    const proc = spawn(join(bin, "postgres"), ["-D", data, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", `cluster_name=${clusterName}`, ...THROWAWAY, "-k", dir], {
      stdio: ["ignore", logFd, logFd],
      cwd: dir,
      detached: true,
      env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", [STACK_ID_ENV]: stackId },
      ...ids,
    });
    closeSync(logFd);
    const got = await awaitOurs(proc, data, port, clusterName, logFile);
    if (got === "ready") return handle(proc, port, dir, asOther);
    lastError = got;
    await stopPostgres(proc);
  }
  throw new LocalPostgresError(`postgres did not start: ${lastError}; see ${logFile}`);
}

/**
 * True once the postmaster says it accepts connections: line 8 of postmaster.pid reads "ready" (what `pg_ctl -w`
 * waits for). Waiting on it, rather than on connection attempts, leaves no "the database system is starting up"
 * FATAL lines in the log.
 */
export function postmasterReady(pidFile: string, pid: number | undefined): boolean {
  try {
    const lines = readFileSync(pidFile, "utf8").split("\n");
    return Number(lines[0]) === pid && lines[7]?.trim() === "ready";
  } catch {
    return false;
  }
}

/** "ready" once the server on `port` is ours (by cluster name) and holds database `steward`; else why not. */
async function awaitOurs(proc: ChildProcess, data: string, port: number, clusterName: string, logFile: string): Promise<string> {
  const deadline = Date.now() + 30_000;
  while (!postmasterReady(join(data, "postmaster.pid"), proc.pid)) {
    if (proc.exitCode !== null || proc.signalCode !== null) return `postgres exited with ${proc.exitCode ?? proc.signalCode} (port ${port} taken?)`;
    if (Date.now() > deadline) return `postgres did not become ready within 30 s; see ${logFile}`;
    await new Promise((r) => setTimeout(r, 50));
  }
  const { default: postgres } = await import("postgres");
  const sql = postgres(`postgres://steward@127.0.0.1:${port}/postgres`, { max: 1, connect_timeout: 5, onnotice: () => undefined });
  try {
    const [row] = await sql<{ name: string }[]>`select current_setting('cluster_name') as name`;
    if (row?.name !== clusterName) return `another PostgreSQL answered on port ${port}`;
    await sql.unsafe("CREATE DATABASE steward");
    return "ready";
  } catch (err) {
    return `postgres did not accept connections: ${(err as Error).message}; see ${logFile}`;
  } finally {
    await sql.end({ timeout: 1 }).catch(() => undefined);
  }
}

async function stopPostgres(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const done = new Promise((r) => proc.once("exit", r));
  proc.kill("SIGINT"); // fast shutdown: roll back open transactions, no checkpoint wait
  const t = setTimeout(() => proc.kill("SIGKILL"), 10_000);
  await done;
  clearTimeout(t);
}

function handle(proc: ChildProcess, port: number, dir: string, asOther: boolean): LocalPostgres {
  return {
    url: `postgres://steward@127.0.0.1:${port}/steward`,
    proc,
    stop: () => stopPostgres(proc),
    remove() {
      if (asOther) rmSync(dir, { recursive: true, force: true });
    },
  };
}

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chownSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

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
}

/**
 * A throwaway cluster: initdb, listen on 127.0.0.1:`port`, trust auth, database `steward`.
 * As root the cluster lives in its own temp dir owned by `postgres` (it cannot reach into root's 0700 dirs).
 */
export async function startLocalPostgres(dir: string, port: number, logFile: string): Promise<LocalPostgres> {
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
    execFileSync(join(bin, "initdb"), ["-D", data, "-U", "steward", "--auth=trust", "-E", "UTF8", "--no-sync"], { stdio: ["ignore", "ignore", "pipe"], cwd: dir, ...ids });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? "").trim();
    throw new LocalPostgresError(`initdb failed: ${stderr || (err as Error).message}`);
  }
  writeFileSync(logFile, "");
  if (ids.uid !== undefined && ids.gid !== undefined) chownSync(logFile, ids.uid, ids.gid);
  const logFd = openSync(logFile, "a");
  const proc = spawn(join(bin, "postgres"), ["-D", data, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-k", dir], {
    stdio: ["ignore", logFd, logFd],
    cwd: dir,
    ...ids,
  });
  const url = `postgres://steward@127.0.0.1:${port}/postgres`;
  const { default: postgres } = await import("postgres").catch((err: unknown) => {
    proc.kill("SIGKILL");
    throw err;
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new LocalPostgresError(`postgres exited with ${proc.exitCode}; see ${logFile}`);
    const sql = postgres(url, { max: 1, connect_timeout: 2, onnotice: () => undefined });
    try {
      await sql`select 1`;
      await sql.unsafe("CREATE DATABASE steward");
      await sql.end();
      break;
    } catch (err) {
      await sql.end({ timeout: 1 }).catch(() => undefined);
      if (Date.now() > deadline) {
        proc.kill("SIGKILL");
        throw new LocalPostgresError(`postgres did not accept connections: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return {
    url: `postgres://steward@127.0.0.1:${port}/steward`,
    proc,
    async stop() {
      // Ctrl-C reaches postgres too (same process group), so it may be gone already: clean up either way.
      if (proc.exitCode === null && proc.signalCode === null) {
        const done = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGINT"); // fast shutdown
        const t = setTimeout(() => proc.kill("SIGKILL"), 10_000);
        await done;
        clearTimeout(t);
      }
      if (asOther) rmSync(dir, { recursive: true, force: true });
    },
  };
}

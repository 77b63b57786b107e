import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import postgres from "postgres";

export type Sql = postgres.Sql;
export { postgres };

/** Every Postgres advisory lock key Steward takes, in one place so no two roles share one. */
export const ADVISORY_LOCK_KEYS = {
  migrations: 4242001,
  supervisor: 4242002,
  observer: 4242003,
  plannerCheckpointSetup: 4242004,
  plannerCostLedger: 4242005,
  plannerIncidents: 4242006,
} as const;

export const MIGRATIONS_DIR = fileURLToPath(new URL("../migrations/", import.meta.url));

/** Seconds before the next connection attempt after `retries` failed ones: quick at first, never more than 1 s. */
export const reconnectBackoff = (retries: number): number => Math.min(0.05 * 2 ** retries, 1);

export function connectDb(url: string, opts: postgres.Options<Record<string, postgres.PostgresType>> = {}): Sql {
  // postgres.js backs off up to 20 s between reconnects, counted across the pool: after a restart that took a few
  // seconds the services would sit out the rest of that back-off with requests hanging. Retry at most a second apart.
  return postgres(url, { max: 5, onnotice: () => undefined, backoff: reconnectBackoff, ...opts });
}

/** Applies migrations in file-name order, once each, under an advisory lock so two services starting together do not race. */
export async function migrate(sql: Sql, dir = MIGRATIONS_DIR): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".sql")).sort();
  const applied: string[] = [];
  await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${ADVISORY_LOCK_KEYS.migrations})`;
    await tx`CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`;
    const done = new Set((await tx<{ name: string }[]>`SELECT name FROM schema_migrations`).map((r) => r.name));
    for (const f of files) {
      if (done.has(f)) continue;
      await tx.unsafe(await readFile(join(dir, f), "utf8"));
      await tx`INSERT INTO schema_migrations (name) VALUES (${f})`;
      applied.push(f);
    }
  });
  return applied;
}

import pg from "pg";
import type { Logger } from "@steward/platform/logger";

/**
 * The pg pool under the LangGraph checkpointer. A pool whose idle client loses its server (PostgreSQL restarting)
 * emits `error`; without a listener that event kills the process. The pool replaces the client on the next query.
 * A client that is checked out has no pool listener (pg-pool removes it on acquire): if the server goes between two of
 * its queries, the client itself emits `error`, which would kill the process just the same. Its own listener keeps
 * it alive; the checkpointer's next query on it then fails, and the task is handed back to the queue.
 */
export function createCheckpointerPool(databaseUrl: string, logger: Logger): pg.Pool {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 4 });
  pool.on("error", (err) => logger.warn({ err: err.message }, "checkpointer lost a database connection; it reconnects on the next query"));
  pool.on("connect", (client) => client.on("error", () => undefined));
  return pool;
}

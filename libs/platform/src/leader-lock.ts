import { postgres, type Sql } from "./db.js";
import type { Logger } from "./logger.js";

/** A lock check (one short query) that takes longer than this is treated as a dead session. */
const CHECK_TIMEOUT_MS = 10_000;

/**
 * Leadership through a Postgres session advisory lock: when the leader's process or connection dies,
 * Postgres releases the lock and a standby's next try takes it.
 *
 * The session is a dedicated one-connection client built from the pool's options (the pattern
 * postgres.js uses for LISTEN), not `sql.reserve()`: postgres.js 3.4 crashes the process with an
 * uncaught TypeError when a reserved connection is used after the server closed it (e.g. a database
 * restart). The dedicated client reconnects instead; the new session does not hold the lock, which the
 * leader check sees, so leadership is lost cleanly and re-contested.
 */
export class LeaderLock {
  private conn: Sql | undefined;
  private leader = false;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly sql: Sql,
    private readonly logger: Logger,
    private readonly onChange: (leader: boolean) => void,
    /** One of ADVISORY_LOCK_KEYS (db.ts): one lock per role. */
    private readonly key: number,
    /**
     * A lease: the lock session is ended by Postgres itself (idle_session_timeout) once the holder has been silent
     * this long, so a holder that is stopped (SIGSTOP, a hung event loop) but whose TCP connection lives on does not
     * keep the lock for ever. Must be well above the check interval (checks keep the session busy). Unset: the lock
     * lives as long as the connection.
     */
    private readonly leaseMs?: number,
  ) {}

  get isLeader(): boolean {
    return this.leader;
  }

  /** Standby: tries to take the lock. Leader: confirms the lock is still held by this session. Serialized. */
  check(): Promise<boolean> {
    return this.serial(() => this.checkNow());
  }

  /** Gives the lock up (if held) and closes the lock session. */
  release(): Promise<void> {
    return this.serial(async () => {
      const c = this.conn;
      this.conn = undefined;
      if (c) {
        if (this.leader) await c`SELECT pg_advisory_unlock(${this.key}::bigint)`.catch(() => undefined);
        await c.end({ timeout: 2 }).catch(() => undefined);
      }
      this.setLeader(false);
    });
  }

  private session(): Sql {
    // No idle timeout and no max lifetime: closing this connection would hand leadership away.
    const base = this.sql.options as unknown as { connection?: Record<string, unknown> };
    const connection = this.leaseMs ? { ...base.connection, idle_session_timeout: String(Math.ceil(this.leaseMs)) } : base.connection;
    this.conn ??= postgres({ ...this.sql.options, connection, max: 1, idle_timeout: null, max_lifetime: null } as unknown as Parameters<typeof postgres>[0]) as unknown as Sql;
    return this.conn;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async checkNow(): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const c = this.session();
      // A check that never answers (a session left half-open by a database restart) would hold this serialized chain,
      // and with it the lock's every later check, for ever: it is given up, its session closed, and retried fresh.
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
        timer.unref?.();
      });
      await Promise.race([this.query(c), timeout]);
    } catch (err) {
      // The next query reconnects on a fresh session; until then we are not the leader.
      this.logger.warn({ err: (err as Error).message }, "leader lock check failed; standing by");
      const stuck = this.conn;
      this.conn = undefined;
      void stuck?.end({ timeout: 0 }).catch(() => undefined);
      this.setLeader(false);
    } finally {
      if (timer) clearTimeout(timer);
    }
    return this.leader;
  }

  private async query(c: Sql): Promise<void> {
    // An answer that arrives after its check was given up (and its session closed) decides nothing.
    const current = () => this.conn === c;
    if (this.leader) {
      // pg_locks shows a bigint key as classid (high half) and objid (low half), objsubid 1.
      const [row] = await c<{ held: boolean }[]>`
        SELECT EXISTS (
          SELECT 1 FROM pg_locks
          WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
            AND classid = 0 AND objid::text::bigint = ${this.key}::bigint AND objsubid = 1
        ) AS held`;
      if (current()) this.setLeader(row?.held === true);
    } else {
      const [row] = await c<{ got: boolean }[]>`SELECT pg_try_advisory_lock(${this.key}::bigint) AS got`;
      if (current()) this.setLeader(row?.got === true);
    }
  }

  private setLeader(v: boolean): void {
    if (v === this.leader) return;
    this.leader = v;
    this.onChange(v);
  }
}

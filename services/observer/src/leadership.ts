import type { Logger } from "@steward/platform/logger";
import { ADVISORY_LOCK_KEYS, type Sql } from "@steward/platform/db";
import { LeaderLock } from "@steward/platform/leader-lock";

export interface ObserverLeadershipDeps {
  sql: Sql;
  logger: Logger;
  /** How often the lock is tried (standby) or confirmed (active). */
  retryMs: number;
  /** An active observer silent this long (stopped, hung) loses the lock to Postgres; see LeaderLock. */
  leaseMs: number;
  /** Called when this observer got the lock. Returns false when it could not take over: the lock is then given up. */
  takeOver(): Promise<boolean>;
  /** Called when this observer lost the lock. */
  standBy(): Promise<void>;
}

/** One active observer among any number of standbys: a Postgres advisory lock, checked on an interval. */
export interface ObserverLeadership {
  /** Checks the lock on an interval from now on; resolves once the first check's role change has run. */
  start(): Promise<void>;
  /** Confirms the lock is still held (or tries to take it). */
  check(): Promise<boolean>;
  /** Stops checking and waits for a role change under way; a check still in flight then changes nothing. */
  close(): Promise<void>;
  /** Gives the lock up and waits for the resulting role change. */
  release(): Promise<void>;
}

export function createObserverLeadership(deps: ObserverLeadershipDeps): ObserverLeadership {
  const { logger } = deps;
  let timer: ReturnType<typeof setInterval> | undefined;
  /** Set by close(): a lock check still in flight must not make a stopping observer active. */
  let closed = false;
  /** Activation and deactivation run one at a time, in the order the lock changed. */
  let transition: Promise<void> = Promise.resolve();

  async function takeOver(): Promise<void> {
    if (closed || !lock.isLeader) return;
    // Holding the lock without folding would block every standby: give it up and try again later.
    if (!(await deps.takeOver())) await lock.release();
  }

  const lock: LeaderLock = new LeaderLock(
    deps.sql,
    logger,
    (isLeader) => {
      transition = transition.then(() => (isLeader ? takeOver() : deps.standBy())).catch((err: unknown) => logger.error({ err: (err as Error).message }, "observer role change failed"));
    },
    ADVISORY_LOCK_KEYS.observer,
    deps.leaseMs,
  );

  return {
    async start() {
      closed = false;
      timer = setInterval(() => void lock.check(), deps.retryMs);
      await lock.check();
      await transition;
    },
    check: () => lock.check(),
    async close() {
      closed = true;
      if (timer) clearInterval(timer);
      timer = undefined;
      await transition;
    },
    async release() {
      await lock.release();
      await transition;
    },
  };
}

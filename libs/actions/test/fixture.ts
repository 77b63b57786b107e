import { afterAll, beforeAll, beforeEach } from "vitest";
import { connectDb, migrate, type Sql } from "@steward/platform/db";
import { createTestDatabase, type TestDatabase } from "@steward/testkit";
import { createActionsRepository, type ActionsRepository, type NewAction } from "../src/repository.js";
import { clearActions } from "../src/testing.js";

/** A test file's own migrated database; `sql` and `repo` are there from its beforeAll on. */
export interface ActionsDatabase {
  readonly sql: Sql;
  readonly repo: ActionsRepository;
  /** Another connection to the same database (a second process's view), closed after the file. */
  connect(): Sql;
}

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`${what} is set in beforeAll`);
  return v;
}

/** Registers the file's hooks: create and migrate the database, empty the actions before each test, drop it after. */
export function useActionsDatabase(name: string): ActionsDatabase {
  let db: TestDatabase | undefined;
  let sql: Sql | undefined;
  let repo: ActionsRepository | undefined;
  const others: Sql[] = [];

  beforeAll(async () => {
    db = await createTestDatabase(name);
    sql = connectDb(db.url);
    await migrate(sql);
    repo = createActionsRepository(sql);
  });
  afterAll(async () => {
    await Promise.all([sql, ...others].map((s) => s?.end({ timeout: 1 })));
    await db?.drop();
  });
  beforeEach(() => clearActions(need(sql, "sql")));

  return {
    get sql() {
      return need(sql, "sql");
    },
    get repo() {
      return need(repo, "repo");
    },
    connect() {
      const s = connectDb(need(db, "the database").url);
      others.push(s);
      return s;
    },
  };
}

/** A supervisor's restart proposal for n1/api; `over` changes any field. */
export const proposal = (over: Partial<NewAction> = {}): NewAction => ({
  node: "n1",
  service: "api",
  kind: "restart",
  reason: "api is down",
  driftKey: "down:n1/api",
  proposedBy: "sup-1",
  channel: "supervisor",
  auditDetail: "api is down",
  now: new Date(),
  ttlMs: 3_600_000,
  traceparent: null,
  ...over,
});

/** Proposes a new pending action and returns its id; throws when the same one was already open. */
export async function proposeNew(repo: ActionsRepository, p: NewAction): Promise<string> {
  const r = await repo.propose(p);
  if (!r.proposed) throw new Error("expected a new action");
  return r.action.id;
}

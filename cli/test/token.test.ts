import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OPERATOR_ROLES } from "@steward/contracts/executor-api";
import { newCommandKeyPair } from "@steward/contracts/command-keys";
import { createExecutor, loadConfig, type Executor } from "@steward/executor";
import { connectDb, migrate, type Sql } from "@steward/platform/db";
import { connectNats, type NatsConnection } from "@steward/platform/bus";
import { createRegistry } from "@steward/platform/metrics";
import { createTestDatabase, startNats, type NatsServerHandle, type TestDatabase } from "@steward/testkit";
import { runCli } from "../src/cli.js";
import { TOKEN } from "../src/command-table.js";

const ADMIN_TOKEN = "cli-test-admin-token-0123456789";

function capture(env: NodeJS.ProcessEnv) {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s), env }, out, err };
}

it("the table's --role choices are the contracts' operator roles", () => {
  expect(TOKEN.subcommands.create.flags.role.choices).toEqual(OPERATOR_ROLES);
});

/** `steward token` through the CLI against a real executor (API only) on its own nats-server and PostgreSQL. */
describe("steward token against a running executor", () => {
  let nats: NatsServerHandle;
  let db: TestDatabase;
  let nc: NatsConnection;
  let sql: Sql;
  let executor: Executor;
  let url = "";
  const logs: string[] = [];
  beforeAll(async () => {
    [nats, db] = await Promise.all([startNats(), createTestDatabase("steward_cli_token")]);
    nc = await connectNats(nats.url, "cli-token-test");
    sql = connectDb(db.url, { max: 4 });
    await migrate(sql);
    const config = loadConfig({ DATABASE_URL: db.url, NATS_URL: nats.url, API_TOKEN: ADMIN_TOKEN, EXECUTOR_SIGNING_KEY: newCommandKeyPair().privateKey, HTTP_PORT: "0", EXECUTOR_WORKER: "false" });
    const logger = pino({ level: "info" }, { write: (s: string) => void logs.push(s) });
    executor = createExecutor({ config, nc, sql, logger, registry: createRegistry("executor", false) });
    ({ url } = await executor.start());
  });
  afterAll(async () => {
    await executor?.stop();
    await nc?.close().catch(() => undefined);
    await sql?.end({ timeout: 2 }).catch(() => undefined);
    await db?.drop().catch(() => undefined);
    await nats?.stop();
  });
  const as = (token: string) => ({ STEWARD_API_URL: url, STEWARD_TOKEN: token });

  it("create prints the token once (with the note on stderr), ls lists it without the token, revoke makes it refused; an unknown role is refused before any call", async () => {
    const made = capture(as(ADMIN_TOKEN));
    expect(await runCli(["token", "create", "olga", "--role", "viewer", "--json"], made.io)).toBe(0);
    const { token, credential } = JSON.parse(made.out.join("\n")) as { token: string; credential: { name: string; role: string } };
    expect(credential).toMatchObject({ name: "olga", role: "viewer" });

    const text = capture(as(ADMIN_TOKEN));
    expect(await runCli(["token", "create", "otto", "--role", "approver"], text.io)).toBe(0);
    expect(text.out.join("\n")).toMatch(/created 'otto' \(role approver\); its token:\s+stw_/);
    expect(text.err.join("\n")).toContain("shown only now");

    // The new viewer reads with the CLI, and may not manage credentials.
    expect(await runCli(["actions"], capture(as(token)).io)).toBe(0);
    const denied = capture(as(token));
    expect(await runCli(["token", "ls"], denied.io)).not.toBe(0);
    expect(denied.err.join("\n")).toContain("may not manage credentials");

    const ls = capture(as(ADMIN_TOKEN));
    expect(await runCli(["token", "ls"], ls.io)).toBe(0);
    const listed = ls.out.join("\n");
    expect(listed).toMatch(/olga\s+viewer\s+database/);
    expect(listed).toMatch(/admin\s+admin\s+setting/);
    expect(listed).not.toContain(token);

    expect(await runCli(["token", "revoke", "olga"], capture(as(ADMIN_TOKEN)).io)).toBe(0);
    const refused = capture(as(token));
    expect(await runCli(["actions"], refused.io)).not.toBe(0);
    expect(refused.err.join("\n")).toMatch(/refused the token|unauthorized|revoked/);

    const again = capture(as(ADMIN_TOKEN));
    expect(await runCli(["token", "revoke", "olga"], again.io)).not.toBe(0);
    expect(again.err.join("\n")).toContain("no live credential named 'olga'");

    // A component's name is refused, the error naming the field; nothing is created.
    const component = capture(as(ADMIN_TOKEN));
    expect(await runCli(["token", "create", "planner", "--role", "admin"], component.io)).toBe(1);
    expect(component.err.join("\n")).toMatch(/error: name 'planner' is reserved: it names a Steward component.*\(HTTP 409, reserved\)/);
    expect(component.out).toEqual([]);
    const after = capture(as(ADMIN_TOKEN));
    expect(await runCli(["token", "ls"], after.io)).toBe(0);
    expect(after.out.join("\n")).not.toMatch(/^planner\s/m);

    const badRole = capture(as(ADMIN_TOKEN));
    expect(await runCli(["token", "create", "zed", "--role", "root"], badRole.io)).toBe(2);

    // Who did it is logged by name; no token ever is.
    const log = logs.join("");
    expect(log).toMatch(/"credential":"olga".*"actor":"admin".*"msg":"credential created"/);
    expect(log).toMatch(/"credential":"olga".*"actor":"admin".*"msg":"credential revoked"/);
    expect(log).not.toContain(token);
    expect(log).not.toContain(ADMIN_TOKEN);
  });
});

import { request } from "node:http";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes, randomUUID } from "node:crypto";
import { generateSigningKey } from "@steward/contracts/command-keys";
import fc from "fast-check";
import { afterAll, beforeAll, expect } from "vitest";
import { spawnService, type ServiceName, type ServiceProcess } from "./service-process.js";
import { ensureStreams, type NatsConnection } from "@steward/platform/bus";
import { natsSecurity, TEST_HARNESS_IDENTITY, type NatsSecurity } from "./secure-nats.js";
import { connectDb, migrate, type Sql } from "@steward/platform/db";
import { createTestDatabase, startFakeTelegram, startNats, stopProcess, waitFor, type FakeTelegram, type NatsServerHandle, type TestDatabase } from "@steward/testkit";

/**
 * What the fuzz tests share (test/fuzz-*.test.ts): the services as processes on a real nats-server and PostgreSQL,
 * raw HTTP, the hostile inputs and what every answer must satisfy.
 *
 * Seeded: a failure prints the seed and the shrunk counterexample. FUZZ_RUNS (default 600 per property; half that
 * for the approval buttons, whose every case seeds an action and mints its tokens first) and FUZZ_SEED change the run;
 * `FUZZ_RUNS=20000 npx vitest run test/fuzz-http-apis.test.ts test/fuzz-node-and-stream.test.ts` is the longer run.
 */

export const RUNS = Number(process.env["FUZZ_RUNS"] ?? 600);
export const SEED = process.env["FUZZ_SEED"] === undefined ? 20261130 : Number(process.env["FUZZ_SEED"]);
export const TOKEN = randomBytes(24).toString("hex");
/** The alerter's scoped executor credential (it may only mint button tokens and relay bot decisions). */
export const ALERTER_TOKEN = randomBytes(24).toString("hex");
export const WEBHOOK_SECRET = randomBytes(24).toString("hex");

export const OPERATOR = { id: 7001, is_bot: false, first_name: "Ops", username: "ops_on_call" };
export const ALERT_CHAT = { id: -100500, type: "group" };

export interface FuzzStack {
  nats: NatsServerHandle;
  db: TestDatabase;
  dir: string;
  nc: NatsConnection;
  sql: Sql;
  executorUrl: string;
  plannerUrl: string;
  observerMetrics: string;
  alerterUrl: string;
  tg: FakeTelegram;
}

/** Filled in by the hooks `useFuzzStack` registers. */
export const stack = { dir: "", executorUrl: "", plannerUrl: "", observerMetrics: "", alerterUrl: "" } as FuzzStack;
const procs: ServiceProcess[] = [];

function launch(name: ServiceName, env: Record<string, string>): ServiceProcess {
  const p = spawnService(name, env);
  procs.push(p);
  return p;
}

/**
 * Starts, once per test file, the node-agent and the observer, and with `apis` the executor, the planner and the
 * alerter (with its Telegram bot on a webhook) too; everything is stopped after the file.
 */
export function useFuzzStack(opts: { apis: boolean }): FuzzStack {
  let security: NatsSecurity | undefined;
  beforeAll(async () => {
    // NATS as deployed: TLS and an identity per service (the fuzzing connection is the test harness's own).
    security = await natsSecurity(["n1"]);
    [stack.nats, stack.db] = await Promise.all([startNats({ config: security.config }), createTestDatabase("steward_fuzz")]);
    stack.dir = await mkdtemp(join(tmpdir(), "steward-fuzz-"));
    stack.nc = await security.connect(stack.nats.url, TEST_HARNESS_IDENTITY, "fuzz-test");
    const id = (name: string) => security!.env(name);
    await ensureStreams(stack.nc);
    stack.sql = connectDb(stack.db.url, { max: 2 });
    await migrate(stack.sql);
    const fleet = join(stack.dir, "fleet.yaml");
    await writeFile(fleet, "version: 1\nnodes:\n  n1:\n    services:\n      web:\n        kind: process\n        command: [\"true\"]\n");
    const common = { NATS_URL: stack.nats.url, DATABASE_URL: stack.db.url };
    const commandKeys = generateSigningKey();
    launch("node-agent", { NATS_URL: stack.nats.url, ...id("node.n1"), NODE_NAME: "n1", FLEET_SPEC: fleet, FLEET_KEY: randomBytes(24).toString("hex"), NODE_COMMAND_PUBLIC_KEY: commandKeys.publicKey, METRICS_PORT: "0", STATE_DIR: join(stack.dir, "agent") });
    const observer = launch("observer", { NATS_URL: stack.nats.url, ...id("observer"), SNAPSHOT_PATH: join(stack.dir, "world.json"), METRICS_PORT: "0" });
    stack.observerMetrics = await waitFor("observer metrics", () => /"port":(\d+)[^\n]*"serving \/metrics"/.exec(observer.output)?.[1], 30_000, 20).then((p) => `http://127.0.0.1:${p}`);
    if (!opts.apis) return;
    const executor = launch("executor", { ...common, ...id("executor"), API_TOKEN: TOKEN, ALERTER_TOKEN, EXECUTOR_SIGNING_KEY: commandKeys.privateKey, HTTP_PORT: "0", EXECUTOR_WORKER: "false" });
    // No model is reachable: the rule-based diagnoser answers, so tasks run to the end without a network.
    const planner = launch("planner", { ...common, ...id("planner"), API_TOKEN: TOKEN, HTTP_PORT: "0", FLEET_SPEC: fleet, OLLAMA_URL: "http://127.0.0.1:9", CLAUDE_ENABLED: "false", POLL_MS: "100" });
    stack.executorUrl = await waitFor("executor API", () => /executor API on (http:\/\/\S+)/.exec(executor.output)?.[1], 30_000, 20);
    stack.plannerUrl = await waitFor("planner API", () => /"port":(\d+)[^\n]*"planner started"/.exec(planner.output)?.[1], 30_000, 20).then((p) => `http://127.0.0.1:${p}`);
    // The alerter with its Telegram bot on a webhook (the fake Bot API only records what the bot sends).
    stack.tg = await startFakeTelegram();
    const alerter = launch("alerter", {
      ...common,
      ...id("alerter"),
      API_TOKEN: ALERTER_TOKEN,
      PLANNER_TOKEN: TOKEN,
      EXECUTOR_URL: stack.executorUrl,
      PLANNER_URL: stack.plannerUrl,
      METRICS_PORT: "0",
      TELEGRAM_API_URL: stack.tg.apiUrl,
      TELEGRAM_BOT_TOKEN: stack.tg.token,
      TELEGRAM_CHAT_ID: String(ALERT_CHAT.id),
      TELEGRAM_ALLOWED_USERS: String(OPERATOR.id),
      TELEGRAM_MODE: "webhook",
      TELEGRAM_WEBHOOK_URL: "http://127.0.0.1:9/telegram/webhook",
      TELEGRAM_WEBHOOK_SECRET: WEBHOOK_SECRET,
      TASK_WAIT_MS: "2000",
    });
    stack.alerterUrl = await waitFor("alerter", () => /steward alerter on (http:\/\/\S+) /.exec(alerter.output)?.[1], 30_000, 20);
  }, 90_000);
  afterAll(async () => {
    await Promise.allSettled(procs.map((p) => stopProcess(p.child)));
    await stack.nc?.close();
    await stack.sql?.end({ timeout: 2 });
    await stack.db?.drop();
    await stack.nats?.stop();
    await security?.remove();
    await stack.tg?.close();
    if (stack.dir) await rm(stack.dir, { recursive: true, force: true });
  });
  return stack;
}

export interface Reply {
  status: number;
  text: string;
}

/** Methods for which node's client frames a body neither as chunked nor by length unless told its length. */
export const UNFRAMED = new Set(["GET", "HEAD", "DELETE", "OPTIONS", "TRACE", "CONNECT"]);

export function send(base: string, r: { method: string; path: string; headers?: Record<string, string>; body?: Buffer | string }): Promise<Reply> {
  const u = new URL(base);
  // Without a length, a DELETE's body would go out unframed and be read as the next request on that keep-alive
  // socket: the server would then close a socket the client reuses, a reset the test made itself. Other methods are
  // sent chunked (so an oversized body is refused while streaming, not only by its declared length).
  const headers = r.body !== undefined && UNFRAMED.has(r.method) ? { ...r.headers, "content-length": String(Buffer.byteLength(r.body)) } : r.headers;
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: u.port, method: r.method, path: r.path, headers, timeout: 20_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer to ${r.method} ${r.path} within 20 s`)));
    // The server may answer (413, 401) and close before it read a large body: that is an answer, not a failure.
    req.on("error", (err: NodeJS.ErrnoException) => (err.code === "EPIPE" || err.code === "ECONNRESET" ? resolve({ status: -1, text: err.code }) : reject(err)));
    if (r.body !== undefined) req.write(r.body);
    req.end();
  });
}

export const auth = { authorization: `Bearer ${TOKEN}` };
export const alerterAuth = { authorization: `Bearer ${ALERTER_TOKEN}` };

// ---- what hostile and careless clients send

export const NASTY_STRINGS = ["", " ", "\u0000", "a\u0000b", "\uD800", "x\uDFFFy", "\uFFFF", "🙂", "%00", "' OR '1'='1", "\\", "${X}", "<script>alert(1)</script>", "\r\n", "a".repeat(70_000)];
export const nastyString = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...NASTY_STRINGS) }, fc.string({ unit: "binary", maxLength: 40 }), fc.string({ maxLength: 40 }));
export const nastyNumber = fc.oneof(fc.constantFrom(1e15, -1e15, 1e308, -1e308, 2 ** 53 + 1, -0, 0.5, -1, 0, 4e9), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer());
/** JSON texts, not values: a value nested thousands deep cannot even be stringified by the test itself. */
export const deepJson = fc.tuple(fc.integer({ min: 50, max: 5000 }), fc.boolean()).map(([n, arr]) => (arr ? "[".repeat(n) + "]".repeat(n) : '{"a":'.repeat(n) + "1" + "}".repeat(n)));
export const nastyJson: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: nastyString.map((v) => JSON.stringify(v)) },
  nastyNumber.map((v) => JSON.stringify(v)),
  fc.constantFrom("true", "false", "null", "1e999", "-1e999", "123456789012345678901234567890"),
  deepJson,
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.array(nastyString, { maxLength: 5 }).map((v) => JSON.stringify(v)),
  fc.dictionary(nastyString, nastyString, { maxKeys: 4 }).map((v) => JSON.stringify(v)),
);

/** A valid body with one field replaced or added: the case a schema most often lets through by accident. */
export function mutated(base: Record<string, unknown>): fc.Arbitrary<string> {
  return fc.tuple(fc.constantFrom(...Object.keys(base), "extra"), nastyJson).map(([k, v]) => JSON.stringify({ ...base, [k]: "__FUZZ__" }).replace('"__FUZZ__"', () => v));
}

/** Whole bodies that are not what the API expects at all. */
export const rawBody = fc.oneof(
  fc.constantFrom("", "null", "[]", "{", "{}", '{"a":', "true", '"x"', "1e999", '{"__proto__":{"x":1}}', "{}".repeat(1000), "x".repeat(2_000_000)),
  fc.string({ unit: "binary", maxLength: 200 }),
  fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a).toString("latin1")),
  nastyJson,
);

/** encodeURIComponent throws on a lone surrogate: such a string reaches the path as its (invalid) UTF-8 bytes below. */
export const wellFormed = (s: string) => Buffer.from(s, "utf8").toString("utf8");
export const segment = fc.oneof(fc.constantFrom("", ".", "..", "%", "%ZZ", "%00", "%2F", "x".repeat(5000), randomUUID(), "1'%20OR%20'1'='1"), nastyString.map((s) => encodeURIComponent(wellFormed(s))), fc.constant("%ED%A0%80"));
export const method = fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "FOO");
export const contentType = fc.oneof({ weight: 6, arbitrary: fc.constant("application/json") }, fc.constantFrom("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=latin1", ""));

export interface Case {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

export function cases(routes: fc.Arbitrary<string>, bodies: fc.Arbitrary<string>): fc.Arbitrary<Case> {
  return fc.record({
    method: fc.oneof({ weight: 4, arbitrary: fc.constant("POST") }, { weight: 3, arbitrary: fc.constant("GET") }, { weight: 1, arbitrary: method }),
    path: routes,
    ct: contentType,
    authed: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    body: fc.option(bodies, { nil: undefined, freq: 5 }),
  }).map(({ method: m, path, ct, authed, body }) => {
    const headers: Record<string, string> = authed ? { ...auth } : {};
    if (ct) headers["content-type"] = ct;
    return { method: m, path, headers, body: m === "GET" || m === "HEAD" ? undefined : body };
  });
}

/** The answer is an answer: no 5xx but the documented 503s, and a 4xx says what was wrong. */
export function checkReply(c: Case, r: Reply, allowed503: string[]): void {
  const where = `${c.method} ${c.path.slice(0, 80)} → ${r.status} ${r.text.slice(0, 200)}`;
  if (r.status === -1) return; // the server refused the body early and closed (checked: it answered the next request)
  if (r.status === 503) {
    const code = (JSON.parse(r.text) as { error?: { code?: string } }).error?.code ?? "";
    expect(allowed503, where).toContain(code);
    return;
  }
  expect(r.status, where).toBeLessThan(500);
  if (r.status >= 400 && c.method !== "HEAD" && r.text) {
    const body = JSON.parse(r.text) as { error?: { code?: unknown; message?: unknown; field?: unknown } };
    expect(typeof body.error?.code, where).toBe("string");
    expect(typeof body.error?.message, where).toBe("string");
    if (r.status === 422) expect(typeof body.error?.field, where).toBe("string");
  }
}

/** A valid request at the same moment as each hostile one: it must be answered, correctly. */
export async function withBystander(bystander: () => Promise<Reply>, hostile: () => Promise<Reply>): Promise<Reply> {
  const [h, b] = await Promise.all([hostile(), bystander()]);
  expect(b.status, `valid request beside the hostile one: ${b.text.slice(0, 200)}`).toBe(200);
  return h;
}

export function expectAlive(): void {
  for (const p of procs) {
    expect({ name: p.name, exit: p.child.exitCode, signal: p.child.signalCode }).toEqual({ name: p.name, exit: null, signal: null });
    // pino levels: 50 is an error (an API 500 is logged so), 60 fatal.
    expect(p.output, `${p.name} logged an error`).not.toMatch(/"level":(50|60)/);
  }
}

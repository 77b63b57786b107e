/**
 * Property-based fuzzing of every HTTP API and of the event stream, against the real service processes (their
 * `dist/main.js`, as an operator runs them) on a real nats-server and PostgreSQL.
 *
 * What must hold for any input: no 5xx (a 503 only where the API says what is missing), every rejection a 4xx with a
 * code and a message (and the field, when a body field was wrong), a valid request sent at the same moment still
 * answered, no process exits, and every event published is either folded or dead-lettered by the observer.
 *
 * Seeded: a failure prints the seed and the shrunk counterexample. FUZZ_RUNS (default 600 per property; half that
 * for the approval buttons, whose every case seeds an action and mints its tokens first) and
 * FUZZ_SEED change the run; `FUZZ_RUNS=20000 npx vitest run test/fuzz-api.test.ts` is the longer run.
 */
import { request } from "node:http";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes, randomUUID } from "node:crypto";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnService, type ServiceName, type ServiceProcess } from "./support/service-process.js";
import { auditOf, seedAction, stateOf } from "@steward/actions/testing";
import { EVENTS_STREAM, commandSubject, eventSubject } from "@steward/contracts/subjects";
import { NodeCommandReply } from "@steward/contracts/node-command";
import { connectNats, ensureStreams, jetstream, jetstreamManager, type NatsConnection } from "@steward/platform/bus";
import { connectDb, migrate, type Sql } from "@steward/platform/db";
import { createTestDatabase, startFakeTelegram, startNats, stopProcess, waitFor, type FakeTelegram, type NatsServerHandle, type TestDatabase } from "@steward/testkit";

const RUNS = Number(process.env["FUZZ_RUNS"] ?? 600);
const SEED = process.env["FUZZ_SEED"] === undefined ? 20261130 : Number(process.env["FUZZ_SEED"]);
const TOKEN = randomBytes(24).toString("hex");

let nats: NatsServerHandle;
let db: TestDatabase;
let dir = "";
let nc: NatsConnection;
let sql: Sql;
const procs: ServiceProcess[] = [];
let executorUrl = "";
let plannerUrl = "";
let observerMetrics = "";
let alerterUrl = "";
let tg: FakeTelegram;
const WEBHOOK_SECRET = randomBytes(24).toString("hex");
/** The one operator on the bot's allow-list, and the chat alerts go to. */
const OPERATOR = { id: 7001, is_bot: false, first_name: "Ops", username: "ops_on_call" };
const ALERT_CHAT = { id: -100500, type: "group" };

function launch(name: ServiceName, env: Record<string, string>): ServiceProcess {
  const p = spawnService(name, env);
  procs.push(p);
  return p;
}

beforeAll(async () => {
  [nats, db] = await Promise.all([startNats(), createTestDatabase("steward_fuzz")]);
  dir = await mkdtemp(join(tmpdir(), "steward-fuzz-"));
  nc = await connectNats(nats.url, "fuzz-test");
  await ensureStreams(nc);
  sql = connectDb(db.url, { max: 2 });
  await migrate(sql);
  const fleet = join(dir, "fleet.yaml");
  await writeFile(fleet, "version: 1\nnodes:\n  n1:\n    services:\n      web:\n        kind: process\n        command: [\"true\"]\n");
  const common = { NATS_URL: nats.url, DATABASE_URL: db.url };
  const executor = launch("executor", { ...common, API_TOKEN: TOKEN, FLEET_KEY: randomBytes(24).toString("hex"), HTTP_PORT: "0", EXECUTOR_WORKER: "false" });
  // No model is reachable: the rule-based diagnoser answers, so tasks run to the end without a network.
  const planner = launch("planner", { ...common, API_TOKEN: TOKEN, HTTP_PORT: "0", FLEET_SPEC: fleet, OLLAMA_URL: "http://127.0.0.1:9", CLAUDE_ENABLED: "false", POLL_MS: "100" });
  launch("node-agent", { NATS_URL: nats.url, NODE_NAME: "n1", FLEET_SPEC: fleet, FLEET_KEY: randomBytes(24).toString("hex"), METRICS_PORT: "0", STATE_DIR: join(dir, "agent") });
  const observer = launch("observer", { NATS_URL: nats.url, SNAPSHOT_PATH: join(dir, "world.json"), METRICS_PORT: "0" });
  executorUrl = await waitFor("executor API", () => /executor API on (http:\/\/\S+)/.exec(executor.output)?.[1], 30_000, 20);
  plannerUrl = await waitFor("planner API", () => /"port":(\d+)[^\n]*"planner started"/.exec(planner.output)?.[1], 30_000, 20).then((p) => `http://127.0.0.1:${p}`);
  observerMetrics = await waitFor("observer metrics", () => /"port":(\d+)[^\n]*"serving \/metrics"/.exec(observer.output)?.[1], 30_000, 20).then((p) => `http://127.0.0.1:${p}`);
  // The alerter with its Telegram bot on a webhook (the fake Bot API only records what the bot sends).
  tg = await startFakeTelegram();
  const alerter = launch("alerter", {
    ...common,
    API_TOKEN: TOKEN,
    EXECUTOR_URL: executorUrl,
    PLANNER_URL: plannerUrl,
    METRICS_PORT: "0",
    TELEGRAM_API_URL: tg.apiUrl,
    TELEGRAM_BOT_TOKEN: tg.token,
    TELEGRAM_CHAT_ID: String(ALERT_CHAT.id),
    TELEGRAM_ALLOWED_USERS: String(OPERATOR.id),
    TELEGRAM_MODE: "webhook",
    TELEGRAM_WEBHOOK_URL: "http://127.0.0.1:9/telegram/webhook",
    TELEGRAM_WEBHOOK_SECRET: WEBHOOK_SECRET,
    TASK_WAIT_MS: "2000",
  });
  alerterUrl = await waitFor("alerter", () => /steward alerter on (http:\/\/\S+) /.exec(alerter.output)?.[1], 30_000, 20);
}, 90_000);

afterAll(async () => {
  await Promise.allSettled(procs.map((p) => stopProcess(p.child)));
  await nc?.close();
  await sql?.end({ timeout: 2 });
  await db?.drop();
  await nats?.stop();
  await tg?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// ---- raw HTTP: fetch would normalise paths and refuse odd methods; the services must not rely on that.

interface Reply {
  status: number;
  text: string;
}

/** Methods for which node's client frames a body neither as chunked nor by length unless told its length. */
const UNFRAMED = new Set(["GET", "HEAD", "DELETE", "OPTIONS", "TRACE", "CONNECT"]);

function send(base: string, r: { method: string; path: string; headers?: Record<string, string>; body?: Buffer | string }): Promise<Reply> {
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

const auth = { authorization: `Bearer ${TOKEN}` };

// ---- what hostile and careless clients send

const NASTY_STRINGS = ["", " ", "\u0000", "a\u0000b", "\uD800", "x\uDFFFy", "\uFFFF", "🙂", "%00", "' OR '1'='1", "\\", "${X}", "<script>alert(1)</script>", "\r\n", "a".repeat(70_000)];
const nastyString = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...NASTY_STRINGS) }, fc.string({ unit: "binary", maxLength: 40 }), fc.string({ maxLength: 40 }));
const nastyNumber = fc.oneof(fc.constantFrom(1e15, -1e15, 1e308, -1e308, 2 ** 53 + 1, -0, 0.5, -1, 0, 4e9), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer());
/** JSON texts, not values: a value nested thousands deep cannot even be stringified by the test itself. */
const deepJson = fc.tuple(fc.integer({ min: 50, max: 5000 }), fc.boolean()).map(([n, arr]) => (arr ? "[".repeat(n) + "]".repeat(n) : '{"a":'.repeat(n) + "1" + "}".repeat(n)));
const nastyJson: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: nastyString.map((v) => JSON.stringify(v)) },
  nastyNumber.map((v) => JSON.stringify(v)),
  fc.constantFrom("true", "false", "null", "1e999", "-1e999", "123456789012345678901234567890"),
  deepJson,
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.array(nastyString, { maxLength: 5 }).map((v) => JSON.stringify(v)),
  fc.dictionary(nastyString, nastyString, { maxKeys: 4 }).map((v) => JSON.stringify(v)),
);

/** A valid body with one field replaced or added: the case a schema most often lets through by accident. */
function mutated(base: Record<string, unknown>): fc.Arbitrary<string> {
  return fc.tuple(fc.constantFrom(...Object.keys(base), "extra"), nastyJson).map(([k, v]) => JSON.stringify({ ...base, [k]: "__FUZZ__" }).replace('"__FUZZ__"', () => v));
}

/** Whole bodies that are not what the API expects at all. */
const rawBody = fc.oneof(
  fc.constantFrom("", "null", "[]", "{", "{}", '{"a":', "true", '"x"', "1e999", '{"__proto__":{"x":1}}', "{}".repeat(1000), "x".repeat(2_000_000)),
  fc.string({ unit: "binary", maxLength: 200 }),
  fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a).toString("latin1")),
  nastyJson,
);

/** encodeURIComponent throws on a lone surrogate: such a string reaches the path as its (invalid) UTF-8 bytes below. */
const wellFormed = (s: string) => Buffer.from(s, "utf8").toString("utf8");
const segment = fc.oneof(fc.constantFrom("", ".", "..", "%", "%ZZ", "%00", "%2F", "x".repeat(5000), randomUUID(), "1'%20OR%20'1'='1"), nastyString.map((s) => encodeURIComponent(wellFormed(s))), fc.constant("%ED%A0%80"));
const method = fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "FOO");
const contentType = fc.oneof({ weight: 6, arbitrary: fc.constant("application/json") }, fc.constantFrom("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=latin1", ""));

interface Case {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

function cases(routes: fc.Arbitrary<string>, bodies: fc.Arbitrary<string>): fc.Arbitrary<Case> {
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
function checkReply(c: Case, r: Reply, allowed503: string[]): void {
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
async function withBystander(bystander: () => Promise<Reply>, hostile: () => Promise<Reply>): Promise<Reply> {
  const [h, b] = await Promise.all([hostile(), bystander()]);
  expect(b.status, `valid request beside the hostile one: ${b.text.slice(0, 200)}`).toBe(200);
  return h;
}

function expectAlive(): void {
  for (const p of procs) {
    expect({ name: p.name, exit: p.child.exitCode, signal: p.child.signalCode }).toEqual({ name: p.name, exit: null, signal: null });
    // pino levels: 50 is an error (an API 500 is logged so), 60 fatal.
    expect(p.output, `${p.name} logged an error`).not.toMatch(/"level":(50|60)/);
  }
}

describe("fuzzing the HTTP APIs and the event stream (seed " + String(SEED) + ")", () => {
  it("planner: /inbox, /tasks, /tasks/:id, /cost", async () => {
    const validEnvelope = { task_id: "t", content: "why is web down?", source: "cli", user: "alice" };
    const routes = fc.oneof(
      { weight: 5, arbitrary: fc.constant("/inbox") },
      { weight: 1, arbitrary: fc.constantFrom("/tasks", "/cost", "/inbox/", "//inbox", "/") },
      { weight: 1, arbitrary: fc.tuple(nastyString, segment).map(([k, v]) => `/tasks?limit=${encodeURIComponent(wellFormed(k))}&conversation_id=${v}`) },
      { weight: 1, arbitrary: segment.map((s) => `/tasks/${s}`) },
    );
    const bodies = fc.oneof({ weight: 3, arbitrary: mutated(validEnvelope) }, { weight: 1, arbitrary: rawBody });
    await fc.assert(
      fc.asyncProperty(cases(routes, bodies), async (c) => {
        const r = await withBystander(
          () => send(plannerUrl, { method: "GET", path: "/tasks?limit=1", headers: auth }),
          () => send(plannerUrl, c),
        );
        checkReply(c, r, []);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    // A task accepted among all that still runs to its end: the queue is not wedged by what it swallowed.
    const ok = await send(plannerUrl, { method: "POST", path: "/inbox", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ ...validEnvelope, task_id: randomUUID() }) });
    expect(ok.status).toBe(202);
    const id = (JSON.parse(ok.text) as { task: { id: string } }).task.id;
    await waitFor("the task to finish", async () => {
      const t = await send(plannerUrl, { method: "GET", path: `/tasks/${id}`, headers: auth });
      return ["succeeded", "failed"].includes((JSON.parse(t.text) as { task: { state: string } }).task.state);
    }, 60_000, 100);
    expectAlive();
  }, 300_000);

  it("executor: /api/actions, approve, reject, world, drift", async () => {
    // FRESH becomes a new pending action for each case, so that bodies reach the store and not only the 404 or 409.
    let n = 0;
    const freshAction = async (): Promise<string> => {
      return seedAction(sql, { node: "n1", service: `svc${String(n++)}`, kind: "restart", reason: "fuzz", proposedBy: "fuzz-test" });
    };
    const id = fc.oneof({ weight: 3, arbitrary: fc.constant("FRESH") }, { weight: 1, arbitrary: segment });
    // The cases an operator found by hand, always run: they must be 4xx naming the field, and change nothing.
    for (const body of [{ actor: "a\u0000b" }, { actor: "\uD800" }, { channel: "cli", actor: "x".repeat(129) }, { reason: "\u0000" }]) {
      for (const decision of "reason" in body ? ["reject"] : ["approve", "reject"]) {
        const fresh = await freshAction();
        const c = { method: "POST", path: `/api/actions/${fresh}/${decision}`, headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ reason: "r", ...body }) };
        const r = await send(executorUrl, c);
        checkReply(c, r, []);
        expect(r.status, JSON.stringify(c.body)).toBe(422);
        expect(await stateOf(sql, fresh)).toBe("pending");
      }
    }
    const routes = fc.oneof(
      { weight: 4, arbitrary: fc.tuple(id, fc.constantFrom("approve", "reject")).map(([i, d]) => `/api/actions/${i}/${d}`) },
      { weight: 1, arbitrary: id.map((i) => `/api/actions/${i}`) },
      { weight: 1, arbitrary: fc.tuple(nastyString, nastyString).map(([s, l]) => `/api/actions?state=${encodeURIComponent(wellFormed(s))}&limit=${encodeURIComponent(wellFormed(l))}`) },
      { weight: 1, arbitrary: fc.constantFrom("/api/world", "/api/drift", "/api", "/api/", "/api/actions/", "/healthz", "/metrics") },
    );
    const bodies = fc.oneof({ weight: 3, arbitrary: mutated({ actor: "alice", channel: "cli", reason: "not now" }) }, { weight: 1, arbitrary: rawBody });
    await fc.assert(
      fc.asyncProperty(cases(routes, bodies), async (c) => {
        const r = await withBystander(
          () => send(executorUrl, { method: "GET", path: "/api/actions?limit=1", headers: auth }),
          async () => send(executorUrl, c.path.includes("FRESH") ? { ...c, path: c.path.replace("FRESH", await freshAction()) } : c),
        );
        // No snapshot exists in this test: world and drift say so with a 503 naming it.
        checkReply(c, r, ["no_snapshot", "unreadable_snapshot"]);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    // Whatever was accepted is a legal history: every audit row is a transition the state machine allows.
    expect((await auditOf(sql)).filter((u) => u.from_state === u.to_state)).toEqual([]);
    expectAlive();
  }, 300_000);

  it("ntfy buttons and bot relays: /approvals/:id/approve|reject, /approvals/tokens, /approvals/channel", async () => {
    // FRESH_ID becomes a new pending action, FRESH_TOKEN a token minted for it (for the decision in the path): bodies
    // then reach the signature check, the claims and the store, not only the 404.
    let n = 0;
    const fresh = () => seedAction(sql, { node: "n1", service: `btn${String(n++)}`, kind: "restart", reason: "fuzz", proposedBy: "fuzz-test" });
    const mint = async (id: string) => {
      const r = await send(executorUrl, { method: "POST", path: "/approvals/tokens", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ action_id: id }) });
      expect(r.status, r.text).toBe(201);
      return JSON.parse(r.text) as { approve: { token: string }; reject: { token: string } };
    };
    // Found by hand, always run: a relayed decision whose actor or detail PostgreSQL cannot store is a 422 naming it.
    for (const [over, field] of [[{ actor: "telegram:1(@a\u0000b)" }, "actor"], [{ actor: "\uD800" }, "actor"], [{ decision: "refuse", detail: "x\u0000" }, "detail"]] as const) {
      const a = await fresh();
      const r = await send(executorUrl, { method: "POST", path: "/approvals/channel", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify(Object.assign({ action_id: a, decision: "approve", channel: "telegram", actor: "telegram:1" }, over)) });
      expect(r.status, r.text).toBe(422);
      expect((JSON.parse(r.text) as { error: { field: string } }).error.field).toBe(field);
      expect(await stateOf(sql, a)).toBe("pending");
    }
    const id = fc.oneof({ weight: 4, arbitrary: fc.constant("FRESH_ID") }, { weight: 1, arbitrary: segment });
    /** A minted token with one character changed, cut short or lengthened: what a mangled button would send. */
    const tokenLike = fc.oneof(
      { weight: 3, arbitrary: fc.constant("FRESH_TOKEN") },
      fc.tuple(fc.nat(), fc.constantFrom("A", "_", ".", "\u0000", "\uD800", "")).map(([i, c]) => `FRESH_TOKEN@${i}${c}`),
      fc.constantFrom("st1", "st1..", "st1.a.b", "st1." + "A".repeat(3000) + ".x"),
      nastyString,
    );
    const byToken = fc.oneof(tokenLike.map((t) => JSON.stringify({ token: t })), mutated({ token: "FRESH_TOKEN" }));
    const routes = fc.oneof(
      { weight: 4, arbitrary: fc.tuple(id, fc.constantFrom("approve", "reject")).map(([i, d]) => `/approvals/${i}/${d}`) },
      { weight: 2, arbitrary: fc.constantFrom("/approvals/tokens", "/approvals/channel") },
      { weight: 1, arbitrary: fc.constantFrom("/approvals/", "/approvals", "/approvals/FRESH_ID", "/approvals/FRESH_ID/approve/x", "/approvals/tokens/x") },
    );
    const bodies = fc.oneof(
      { weight: 3, arbitrary: byToken },
      { weight: 2, arbitrary: mutated({ action_id: "FRESH_ID", ttl_s: 600 }) },
      { weight: 3, arbitrary: mutated({ action_id: "FRESH_ID", decision: "approve", channel: "telegram", actor: "telegram:7001(@ops)", detail: "pressed" }) },
      { weight: 1, arbitrary: rawBody.filter((b) => b.length < 100_000) },
    );
    await fc.assert(
      fc.asyncProperty(cases(routes, bodies), async (c) => {
        const r = await withBystander(
          () => send(executorUrl, { method: "GET", path: "/api/actions?limit=1", headers: auth }),
          async () => {
            let { path, body } = c;
            if (path.includes("FRESH_ID") || body?.includes("FRESH_")) {
              const a = await fresh();
              const t = await mint(a);
              const token = path.endsWith("/reject") ? t.reject.token : t.approve.token;
              path = path.replace("FRESH_ID", a);
              body = body
                ?.replaceAll("FRESH_ID", a)
                .replace(/FRESH_TOKEN@(\d+)(.?)/u, (_m, i: string, ch: string) => JSON.stringify(token.slice(0, Number(i) % token.length) + ch + token.slice((Number(i) % token.length) + 1)).slice(1, -1))
                .replaceAll("FRESH_TOKEN", token);
            }
            return send(executorUrl, { ...c, path, ...(body === undefined ? {} : { body }) });
          },
        );
        checkReply(c, r, []);
      }),
      { numRuns: Math.ceil(RUNS / 2), seed: SEED, endOnFailure: true },
    );
    expect((await auditOf(sql)).filter((u) => u.from_state === u.to_state && u.to_state !== "pending")).toEqual([]);
    expectAlive();
  }, 300_000);

  it("alerter: the Telegram webhook (messages and button presses) and its other routes", async () => {
    // Buttons that exist: the alerter posts each pending action to the chat with Approve/Reject, one row per button.
    await seedAction(sql, { node: "n1", service: "tg-button", kind: "restart", reason: "fuzz", proposedBy: "fuzz-test" });
    const buttons = await waitFor("the alerter to post buttons", async () => {
      const rows = await sql<{ id: string }[]>`SELECT id FROM telegram_callbacks WHERE message_id IS NOT NULL ORDER BY created_at DESC LIMIT 20`;
      return rows.length >= 2 && rows.map((r) => r.id);
    }, 60_000, 100);
    const hook = (body: string, secret = WEBHOOK_SECRET) => send(alerterUrl, { method: "POST", path: "/telegram/webhook", headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": secret }, body });
    let updateId = 1;
    const j = (v: unknown) => fc.oneof({ weight: 3, arbitrary: fc.constant(JSON.stringify(v)) }, { weight: 1, arbitrary: nastyJson });
    const user = fc.record({ id: j(OPERATOR.id), username: j(OPERATOR.username), first: j("Ops") }).map((u) => `{"id":${u.id},"is_bot":false,"first_name":${u.first},"username":${u.username}}`);
    const chat = j(ALERT_CHAT.id).map((id) => `{"id":${id},"type":"group"}`);
    const message = fc
      .record({ mid: j(1), chat, from: user, text: j("/status").chain((t) => fc.oneof(fc.constant(t), fc.constantFrom('"/help"', '"/task why is web down?"', '"/task"', '"hello"', '"/status@steward_test_bot"'))) })
      .map((m) => `{"message_id":${m.mid},"date":1764547200,"chat":${m.chat},"from":${m.from},"text":${m.text}}`);
    const callback = fc
      .record({ qid: j("q1"), from: user, message, data: fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...buttons).map((b) => JSON.stringify(b)) }, { weight: 1, arbitrary: nastyJson }) })
      .map((q) => `{"id":${q.qid},"from":${q.from},"message":${q.message},"chat_instance":"ci","data":${q.data}}`);
    const update = fc.oneof(message.map((m) => `"message":${m}`), callback.map((q) => `"callback_query":${q}`), fc.constantFrom('"edited_message":{"message_id":1}', '"poll":{}'));
    const bodies = fc.oneof(
      { weight: 6, arbitrary: fc.tuple(j(0), update).map(([id, u]) => `{"update_id":${id === "0" ? String(updateId++) : id},${u}}`) },
      { weight: 1, arbitrary: mutated({ update_id: 5, message: { message_id: 1, chat: ALERT_CHAT, from: OPERATOR, text: "/status" } }) },
      { weight: 1, arbitrary: rawBody },
    );
    const secret = fc.oneof({ weight: 8, arbitrary: fc.constant(WEBHOOK_SECRET) }, { weight: 1, arbitrary: fc.constantFrom("", "x", WEBHOOK_SECRET + "x", WEBHOOK_SECRET.toUpperCase()) });
    const path = fc.oneof({ weight: 8, arbitrary: fc.constant("/telegram/webhook") }, { weight: 1, arbitrary: fc.constantFrom("/telegram/webhook/", "/telegram", "/", "/healthz", "/metrics") }, { weight: 1, arbitrary: segment.map((s) => `/telegram/${s}`) });
    const alerterCase = fc.record({ method: fc.oneof({ weight: 8, arbitrary: fc.constant("POST") }, { weight: 1, arbitrary: method }), path, secret, ct: contentType, body: bodies }).map(
      ({ method: m, path: p, secret: s, ct, body }): Case => ({ method: m, path: p, headers: { "x-telegram-bot-api-secret-token": s, ...(ct ? { "content-type": ct } : {}) }, ...(m === "GET" || m === "HEAD" ? {} : { body }) }),
    );
    // A valid command at the same moment: answered 200, and the bot replies to it.
    const bystander = () => hook(JSON.stringify({ update_id: 900_000 + updateId++, message: { message_id: 1, date: 1764547200, chat: ALERT_CHAT, from: OPERATOR, text: "/help" } }));
    await fc.assert(
      fc.asyncProperty(alerterCase, async (c) => {
        const r = await withBystander(bystander, () => send(alerterUrl, c));
        checkReply(c, r, []);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    // The cases found by hand, always run: a 4xx naming the field, and the bot still answers the next valid update.
    for (const [body, field] of [
      [`{"update_id":1,"message":{"message_id":1,"chat":{"id":1},"from":{"id":1},"text":"/task a\\u0000b"}}`, "message.text"],
      [`{"update_id":1,"callback_query":{"id":"q","from":{"id":7001,"username":"\\ud800"},"data":"${buttons[0]}"}}`, "callback_query.from.username"],
      [`{"update_id":1e16,"message":{"message_id":1,"chat":{"id":1}}}`, "update_id"],
      [`{"update_id":1,"callback_query":{"id":"q","from":{"id":1},"data":"${"x".repeat(65)}"}}`, "callback_query.data"],
    ] as const) {
      const r = await hook(body);
      expect(r.status, body).toBe(422);
      expect((JSON.parse(r.text) as { error: { field: string } }).error.field).toBe(field);
    }
    const sentBefore = tg.sent.length;
    expect((await bystander()).status).toBe(200);
    expect(tg.sent.length).toBeGreaterThan(sentBefore);
    expectAlive();
  }, 300_000);

  it("console: login, pages and forms", async () => {
    const routes = fc.oneof(
      fc.constantFrom("/console", "/console/login", "/console/logout", "/console/actions", "/console/tasks", "/console/events", "/console/static/console.js"),
      segment.map((s) => `/console/${s}`),
      fc.tuple(segment, fc.constantFrom("approve", "reject")).map(([s, d]) => `/console/actions/${s}/${d}`),
    );
    const form = fc.dictionary(fc.constantFrom("token", "csrf", "reason", "next", "x"), nastyString, { maxKeys: 4 }).map((d) => new URLSearchParams(d).toString());
    await fc.assert(
      fc.asyncProperty(cases(routes, fc.oneof(form, rawBody)), async (c) => {
        const r = await withBystander(
          () => send(executorUrl, { method: "GET", path: "/api/actions?limit=1", headers: auth }),
          () => send(executorUrl, c),
        );
        // Console pages answer HTML, not the JSON error shape: only the status is checked here.
        if (r.status !== -1) expect(r.status, `${c.method} ${c.path.slice(0, 80)} → ${r.status}`).toBeLessThan(500);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    expectAlive();
  }, 300_000);

  it("node commands: anything sent to a node-agent gets a refusal naming why, and the agent stays up", async () => {
    // Well-formed but signed with a key the agent does not have: the mutations start from the closest thing to valid.
    const body = { id: randomUUID(), node: "n1", op: "restart", service: "web", action_id: null, issued_at: new Date().toISOString(), expires_at: new Date(Date.now() + 60_000).toISOString() };
    const signed = { body, sig: "ab".repeat(32) };
    const payloads = fc.oneof(mutated(signed), fc.constant(body).chain((b) => mutated(b).map((m) => `{"body":${m},"sig":"${"cd".repeat(32)}"}`)), rawBody.filter((b) => b.length < 900_000));
    await waitFor("the node-agent to answer commands", async () => {
      try {
        await nc.request(commandSubject("n1"), "{}", { timeout: 1000 });
        return true;
      } catch {
        return false;
      }
    }, 30_000, 100);
    await fc.assert(
      fc.asyncProperty(payloads, async (p) => {
        const reply = NodeCommandReply.parse((await nc.request(commandSubject("n1"), p, { timeout: 10_000 })).json());
        // Unsigned or forged: never executed, always refused with a code.
        expect(reply.ok, p.slice(0, 200)).toBe(false);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    expectAlive();
  }, 300_000);

  it("event stream: every message is folded or dead-lettered, none crashes the observer", async () => {
    const js = jetstream(nc);
    const validEvent = { id: "e", node: "n1", type: "heartbeat", ts: new Date().toISOString(), seq: 1, services: [] };
    const payloads = fc.oneof(mutated(validEvent), rawBody.filter((b) => b.length < 900_000));
    const types = fc.constantFrom("heartbeat", "service", "health_check", "host", "repo", "secret", "nope");
    let published = 0;
    await fc.assert(
      fc.asyncProperty(payloads, types, async (p, type) => {
        await js.publish(eventSubject("n1", type), p);
        published++;
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    const counted = async () => {
      const text = await (await fetch(`${observerMetrics}/metrics`)).text();
      let n = 0;
      for (const m of text.matchAll(/^steward_observer_events_(?:folded|dead_lettered)_total\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
      return n;
    };
    // The node-agent's own heartbeats share the stream: the invariant is over the whole stream, so every message in it
    // (the fuzzed ones among them) ends up counted exactly once, folded or dead-lettered.
    const jsm = await jetstreamManager(nc);
    await waitFor("every message in the stream folded or dead-lettered", async () => {
      const before = (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
      const n = await counted();
      const after = (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
      expect(n).toBeLessThanOrEqual(after);
      return before >= published && n >= before;
    }, 60_000, 100);
    expectAlive();
  }, 300_000);
});

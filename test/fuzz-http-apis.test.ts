/**
 * Property-based fuzzing of the HTTP APIs, against the real service processes (their `dist/main.js`, as an operator runs them) on
 * a real nats-server and PostgreSQL (set-up, inputs and checks: support/fuzz-kit.ts).
 *
 * What must hold for any input: no 5xx (a 503 only where the API says what is missing), every rejection a 4xx with a
 * code and a message (and the field, when a body field was wrong), a valid request sent at the same moment still
 * answered, no process exits, and every event published is either folded or dead-lettered by the observer.
 */
import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { auditOf, seedAction, stateOf } from "@steward/actions/testing";
import { waitFor } from "@steward/testkit";
import { RUNS, SEED, WEBHOOK_SECRET, OPERATOR, ALERT_CHAT, send, auth, alerterAuth, nastyString, nastyJson, mutated, rawBody, wellFormed, segment, method, contentType, cases, checkReply, withBystander, expectAlive, type Case, stack, useFuzzStack, type FuzzStack } from "./support/fuzz-kit.js";

useFuzzStack({ apis: true });
let sql: FuzzStack["sql"], executorUrl: FuzzStack["executorUrl"], plannerUrl: FuzzStack["plannerUrl"], alerterUrl: FuzzStack["alerterUrl"], tg: FuzzStack["tg"];
beforeAll(() => ({ sql, executorUrl, plannerUrl, alerterUrl, tg } = stack));

describe("fuzzing the HTTP APIs (seed " + String(SEED) + ")", () => {
  it("planner: /inbox, /tasks, /tasks/:id, /cost, /incidents", async () => {
    const validEnvelope = { task_id: "t", content: "why is web down?", source: "cli", user: "alice" };
    const routes = fc.oneof(
      { weight: 5, arbitrary: fc.constant("/inbox") },
      { weight: 1, arbitrary: fc.constantFrom("/tasks", "/cost", "/inbox/", "//inbox", "/") },
      { weight: 1, arbitrary: fc.tuple(nastyString, segment).map(([k, v]) => `/tasks?limit=${encodeURIComponent(wellFormed(k))}&conversation_id=${v}`) },
      { weight: 1, arbitrary: segment.map((s) => `/tasks/${s}`) },
      { weight: 1, arbitrary: fc.tuple(nastyString, segment).map(([k, v]) => `/incidents?limit=${encodeURIComponent(wellFormed(k))}&state=${v}`) },
      { weight: 1, arbitrary: fc.tuple(segment, fc.constantFrom("", "/postmortem", "/postmortem/", "/x")).map(([s, tail]) => `/incidents/${s}${tail}`) },
      { weight: 1, arbitrary: fc.constantFrom("/incidents", "/incidents/", "/incidents/recurrences", "/incidents/1", "/incidents/%231/postmortem", "/incidents/9007199254740993") },
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
      const r = await send(executorUrl, { method: "POST", path: "/approvals/tokens", headers: { ...alerterAuth, "content-type": "application/json" }, body: JSON.stringify({ action_id: id }) });
      expect(r.status, r.text).toBe(201);
      return JSON.parse(r.text) as { approve: { token: string }; reject: { token: string } };
    };
    // Found by hand, always run: a relayed decision whose actor or detail PostgreSQL cannot store is a 422 naming it.
    for (const [over, field] of [[{ actor: "telegram:1(@a\u0000b)" }, "actor"], [{ actor: "\uD800" }, "actor"], [{ decision: "refuse", detail: "x\u0000" }, "detail"]] as const) {
      const a = await fresh();
      const r = await send(executorUrl, { method: "POST", path: "/approvals/channel", headers: { ...alerterAuth, "content-type": "application/json" }, body: JSON.stringify(Object.assign({ action_id: a, decision: "approve", channel: "telegram", actor: "telegram:1" }, over)) });
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
      { weight: 3, arbitrary: mutated({ action_id: "FRESH_ID", decision: "approve", channel: "telegram", actor: "telegram:7001(@ops)", detail: "pressed", token: "FRESH_TOKEN" }) },
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
            // The bearer routes here are the alerter's: an authenticated case carries its credential.
            const headers = c.headers["authorization"] ? { ...c.headers, ...alerterAuth } : c.headers;
            return send(executorUrl, { ...c, path, headers, ...(body === undefined ? {} : { body }) });
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
});

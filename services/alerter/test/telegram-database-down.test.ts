/**
 * A button press that arrives while the alerter's PostgreSQL is down is not lost: the webhook answers 503 (Telegram
 * delivers a non-2xx update again) and getUpdates keeps its offset before it, the chat gets no misleading reply, and
 * once the database is back the press is handled exactly once. Real PostgreSQL (stopped and started), the Telegram
 * Bot API stand-in, and a recording stand-in for the executor's channel-decision endpoint.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Registry } from "@steward/platform/metrics";
import { connectDb, migrate, type Sql } from "@steward/platform/db";
import { silentLogger } from "@steward/platform/logger";
import { seedAction } from "@steward/actions/testing";
import { createExecutorClient } from "@steward/executor/client";
import { listenOnLoopback, readText, startFakeTelegram, startPrivatePostgres, waitFor, type FakeTelegram, type LoopbackServer, type PrivatePostgres } from "@steward/testkit";
import { createAlerterMetrics } from "../src/metrics.js";
import { createTelegramApi } from "../src/telegram-api.js";
import { createTelegramBot, type TelegramBot } from "../src/telegram-bot.js";

const OPERATOR = { id: 7001, is_bot: false, first_name: "Op", username: "op" };
const CHAT = { id: -1001, type: "group" as const, title: "ops" };
const SECRET = randomBytes(16).toString("hex");

let pg: PrivatePostgres;
let sql: Sql;
let tg: FakeTelegram;
let executor: LoopbackServer;
/** Decisions the executor stand-in received. */
const decisions: { action_id: string; decision: string }[] = [];
let hook: LoopbackServer | undefined;
let abort: AbortController | undefined;
let poll: Promise<void> | undefined;

function makeBot(registry: Registry): TelegramBot {
  return createTelegramBot({
    api: createTelegramApi({ apiUrl: tg.apiUrl, token: tg.token, timeoutMs: 10_000 }),
    sql,
    executor: createExecutorClient({ url: executor.url, token: "t".repeat(32), timeoutMs: 10_000, label: "the executor" }),
    planner: undefined,
    fleet: () => Promise.reject(new Error("not used")),
    allowedUsers: new Set([String(OPERATOR.id)]),
    allowedChats: new Set([String(CHAT.id)]),
    logger: silentLogger(),
    metrics: createAlerterMetrics(registry),
    taskWaitMs: 1000,
  });
}

/** A pending action, its Approve button stored and sent to the chat, as the Telegram sink does. */
async function approveButton(): Promise<{ actionId: string; messageId: number; data: string }> {
  const actionId = await seedAction(sql, { node: "n1", service: `svc-${randomBytes(3).toString("hex")}` });
  const data = randomBytes(12).toString("base64url");
  const api = createTelegramApi({ apiUrl: tg.apiUrl, token: tg.token, timeoutMs: 10_000 });
  const m = await api.sendMessage(CHAT.id, `restart ${actionId}?`, { inline_keyboard: [[{ text: "Approve", callback_data: data }]] });
  // The executor stand-in takes any token; the real one checks it (alerter.test.ts).
  await sql`INSERT INTO telegram_callbacks (id, action_id, decision, chat_id, message_id, token) VALUES (${data}, ${actionId}, 'approve', ${String(CHAT.id)}, ${m.message_id}, 'st1.stand-in.token')`;
  return { actionId, messageId: m.message_id, data };
}

const deferred = async (registry: Registry): Promise<number> => (await registry.getSingleMetric("steward_alerter_telegram_updates_deferred_total")?.get())?.values[0]?.value ?? 0;

beforeAll(async () => {
  [pg, tg] = await Promise.all([startPrivatePostgres(), startFakeTelegram()]);
  sql = connectDb(pg.url, { max: 2 });
  await migrate(sql);
  executor = await listenOnLoopback((req, res) => {
    void readText(req).then((body) => {
      const d = JSON.parse(body) as { action_id: string; decision: string };
      decisions.push(d);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ audited: true }));
    });
  });
}, 60_000);

afterAll(async () => {
  abort?.abort();
  await poll?.catch(() => undefined);
  await hook?.close();
  await executor?.close();
  await sql?.end({ timeout: 1 }).catch(() => undefined);
  await tg?.close();
  await pg?.stop();
});

describe("telegram updates while the database is down", () => {
  it("webhook: a press answers 503 with no chat reply while PostgreSQL is down, and is handled once when Telegram delivers it again", async () => {
    const registry = new Registry();
    const bot = makeBot(registry);
    hook = await listenOnLoopback((req, res) => void bot.webhook(req, res, SECRET));
    await createTelegramApi({ apiUrl: tg.apiUrl, token: tg.token, timeoutMs: 10_000 }).setWebhook(`${hook.url}/telegram/webhook`, SECRET);
    const button = await approveButton();

    await pg.down();
    const u = await tg.injectCallback({ from: OPERATOR, chat: CHAT, message_id: button.messageId, data: button.data });
    expect(tg.deliveries.filter((d) => d.update_id === u.update_id).map((d) => d.status)).toEqual([503]);
    expect(await deferred(registry)).toBe(1);
    // Nothing told the operator something went wrong, nothing reached the executor.
    expect(tg.answers.filter((a) => a.callback_query_id === u.callback_query!.id)).toEqual([]);
    expect(decisions).toEqual([]);
    // Still down: a redelivery is refused the same way.
    expect(await tg.redeliverFailed()).toBe(1);
    expect(tg.deliveries.filter((d) => d.update_id === u.update_id).map((d) => d.status)).toEqual([503, 503]);

    await pg.up();
    // Telegram keeps delivering until it gets a 2xx; the database may take a moment to accept the pool's connections again.
    await waitFor("the press to be accepted after the database is back", async () => (await tg.redeliverFailed()) === 0 && tg.deliveries.at(-1)?.update_id === u.update_id, 60_000, 250);
    expect(tg.deliveries.filter((d) => d.update_id === u.update_id).at(-1)?.status).toBe(200);
    expect(decisions).toEqual([expect.objectContaining({ action_id: button.actionId, decision: "approve" })]);
    const answers = tg.answers.filter((a) => a.callback_query_id === u.callback_query!.id);
    expect(answers).toHaveLength(1);
    expect(answers[0]?.text).toMatch(/Approved by @op/);
    const [row] = await sql<{ used_by: string | null }[]>`SELECT used_by FROM telegram_callbacks WHERE id = ${button.data}`;
    expect(row?.used_by).toBe("telegram:7001(@op)");

    await createTelegramApi({ apiUrl: tg.apiUrl, token: tg.token, timeoutMs: 10_000 }).deleteWebhook();
    await hook.close();
    hook = undefined;
  }, 120_000);

  it("getUpdates: the offset stays before a press the database was down for; it is handled once when the database is back", async () => {
    decisions.length = 0;
    const registry = new Registry();
    const bot = makeBot(registry);
    const button = await approveButton();
    abort = new AbortController();
    poll = bot.poll(abort.signal, 1);

    await pg.down();
    const u = await tg.injectCallback({ from: OPERATOR, chat: CHAT, message_id: button.messageId, data: button.data });
    // Fetched and deferred (more than once: the bot asks again from the same offset), no reply, nothing decided.
    await waitFor("the press to be deferred twice", async () => (await deferred(registry)) >= 2, 60_000, 100);
    const asked = tg.calls.filter((c) => c.method === "getUpdates").map((c) => Number(c.params["offset"]));
    expect(asked.every((o) => !(o > u.update_id))).toBe(true);
    expect(tg.answers.filter((a) => a.callback_query_id === u.callback_query!.id)).toEqual([]);
    expect(decisions).toEqual([]);

    await pg.up();
    await waitFor("the press to be answered", () => tg.answers.some((a) => a.callback_query_id === u.callback_query!.id), 60_000, 100);
    // Confirmed: the bot moves past it, and it is not handled again.
    await waitFor("getUpdates to move past the press", () => tg.calls.some((c) => c.method === "getUpdates" && Number(c.params["offset"]) === u.update_id + 1), 30_000, 50);
    const callsBefore = tg.calls.length;
    await waitFor("another getUpdates round", () => tg.calls.slice(callsBefore).some((c) => c.method === "getUpdates"), 30_000, 50);
    expect(tg.answers.filter((a) => a.callback_query_id === u.callback_query!.id)).toHaveLength(1);
    expect(decisions).toEqual([expect.objectContaining({ action_id: button.actionId, decision: "approve" })]);
  }, 120_000);
});

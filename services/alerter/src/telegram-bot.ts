import { randomUUID, createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { DriftReport } from "@steward/contracts/drift";
import type { Logger } from "@steward/platform/logger";
import type { Snapshot } from "@steward/contracts/world-state";
import type { Sql } from "@steward/platform/db";
import { ApiBadResponse, ApiError, ApiUnreachable, type ExecutorClient } from "@steward/executor/client";
import type { PlannerClient } from "@steward/planner/client";
import { TelegramUpdate } from "@steward/contracts/telegram";
import { DATABASE_UNREACHABLE, HttpError, isDatabaseUnreachable, readBodyText } from "@steward/platform/http";
import { sleep } from "@steward/platform/sleep";
import type { AlerterMetrics } from "./metrics.js";
import type { Read } from "./rules.js";
import type { TelegramApi, TgUpdate, TgUser } from "./telegram-api.js";

export interface FleetView {
  snapshot: Read<Snapshot>;
  drift: Read<DriftReport>;
  pendingActions: number;
  now: number;
}

export interface TelegramBotDeps {
  api: TelegramApi;
  sql: Sql;
  executor: ExecutorClient;
  planner: PlannerClient | undefined;
  fleet: () => Promise<FleetView>;
  allowedUsers: ReadonlySet<string>;
  allowedChats: ReadonlySet<string>;
  logger: Logger;
  metrics: AlerterMetrics;
  taskWaitMs: number;
  taskPollMs?: number;
  /** Aborted on shutdown: background task waits stop. */
  signal?: AbortSignal;
}

/** Both lists must admit the press when set; an empty list does not restrict. Config refuses both empty. */
export function isAllowed(userId: string, chatId: string, users: ReadonlySet<string>, chats: ReadonlySet<string>): boolean {
  if (users.size === 0 && chats.size === 0) return false;
  return (users.size === 0 || users.has(userId)) && (chats.size === 0 || chats.has(chatId));
}

export const actorOf = (u: TgUser): string => `telegram:${u.id}${u.username ? `(@${u.username})` : ""}`;

/** Pure: the `/status` answer. */
export function renderStatus(v: FleetView): string {
  if (!v.snapshot.ok) return `Fleet status unknown: ${v.snapshot.reason}`;
  const s = v.snapshot.value;
  const age = Math.max(0, Math.round((v.now - Date.parse(s.written_at)) / 1000));
  const lines = [`Fleet (snapshot ${age} s old)`];
  for (const n of Object.values(s.world.nodes).sort((a, b) => a.name.localeCompare(b.name))) {
    const svcs = Object.values(n.services);
    const bad = svcs.filter((x) => x.state !== "running" || (x.health !== "healthy" && x.health !== "none"));
    lines.push(`• ${n.name}: ${n.status}, ${svcs.length} service(s)${bad.length ? `; not ok: ${bad.map((x) => `${x.name} ${x.state}/${x.health}`).join(", ")}` : ", all ok"}`);
  }
  if (Object.keys(s.world.nodes).length === 0) lines.push("• no nodes have reported yet");
  if (v.drift.ok) {
    const d = v.drift.value.drifts.filter((x) => x.severity !== "report");
    lines.push(d.length === 0 ? "Drift: none" : `Drift (${d.length}): ${d.slice(0, 10).map((x) => `${x.kind} ${x.node}/${x.service}`).join(", ")}${d.length > 10 ? ", …" : ""}`);
  } else lines.push(`Drift: unknown (${v.drift.reason})`);
  lines.push(`Pending actions: ${v.pendingActions}`);
  return lines.join("\n");
}

/** Telegram's updates are small; anything larger is not one. */
const MAX_WEBHOOK_BYTES = 1_000_000;

const HELP = "Steward bot. /status shows the fleet; /task <question or request> asks the planner and replies with its answer. Pending actions arrive with Approve/Reject buttons.";

export interface TelegramBot {
  /** Throws only when the database is unreachable: the update is then not handled and must be delivered again. */
  handle(u: TgUpdate): Promise<void>;
  /** Long polling until the signal aborts. */
  poll(signal: AbortSignal, timeoutS: number): Promise<void>;
  /** POST /telegram/webhook with X-Telegram-Bot-Api-Secret-Token. */
  webhook(req: IncomingMessage, res: ServerResponse, secret: string): Promise<void>;
  /** Background /task waits still running. */
  idle(): Promise<void>;
}

export function createTelegramBot(deps: TelegramBotDeps): TelegramBot {
  const { api, sql, executor, logger, metrics } = deps;
  const background = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>) => {
    background.add(p);
    void p.finally(() => background.delete(p));
  };

  async function answer(id: string, text: string, alert = false): Promise<void> {
    await api.answerCallbackQuery(id, text, alert).catch((err: Error) => logger.warn({ err: err.message }, "answerCallbackQuery failed"));
  }

  async function onCallback(q: NonNullable<TgUpdate["callback_query"]>): Promise<void> {
    const data = q.data ?? "";
    const [row] = await sql<{ id: string; action_id: string; decision: "approve" | "reject"; used_at: Date | null; chat_id: string | null; message_id: string | number | null; token: string | null }[]>`
      SELECT id, action_id, decision, used_at, chat_id, message_id, token FROM telegram_callbacks WHERE id = ${data}`;
    if (!row) {
      metrics.telegramCallbacks.inc({ result: "unknown" });
      return answer(q.id, "This button is unknown or has expired.", true);
    }
    const userId = String(q.from.id);
    const chatId = q.message ? String(q.message.chat.id) : "";
    const actor = actorOf(q.from);
    if (!isAllowed(userId, chatId, deps.allowedUsers, deps.allowedChats)) {
      metrics.telegramCallbacks.inc({ result: "not_allowed" });
      logger.warn({ action_id: row.action_id, user_id: userId, chat_id: chatId, decision: row.decision }, "telegram press from a user/chat that is not allow-listed; refused");
      await executor
        .relayDecision({ action_id: row.action_id, decision: "refuse", channel: "telegram", actor, detail: `${row.decision} pressed by user ${userId} in chat ${chatId}, which is not allow-listed` })
        .catch((err: Error) => logger.error({ action_id: row.action_id, err: err.message }, "could not audit a refused telegram press"));
      return answer(q.id, "Not allowed: you are not on this bot's allow-list. The attempt was recorded.", true);
    }
    // A button belongs to the one message it was sent with: its id pressed on another message (another action's) is refused.
    const elsewhere = row.message_id === null || !q.message || String(row.message_id) !== String(q.message.message_id) || (row.chat_id !== null && row.chat_id !== chatId);
    if (elsewhere || !row.token) {
      const why = elsewhere ? "the button does not belong to the message it was pressed on" : "the button was sent before buttons carried a token";
      metrics.telegramCallbacks.inc({ result: "refused" });
      logger.warn({ action_id: row.action_id, user_id: userId, chat_id: chatId, decision: row.decision, why }, "telegram press refused");
      await executor
        .relayDecision({ action_id: row.action_id, decision: "refuse", channel: "telegram", actor, detail: `${row.decision} pressed by ${actor}: ${why}` })
        .catch((err: Error) => logger.error({ action_id: row.action_id, err: err.message }, "could not audit a refused telegram press"));
      return answer(q.id, elsewhere ? "This button does not belong to this message; nothing was decided." : "This button is too old to decide anything; use the console.", true);
    }
    const won = await sql`UPDATE telegram_callbacks SET used_at = now(), used_by = ${actor} WHERE id = ${row.id} AND used_at IS NULL RETURNING id`;
    if (won.length === 0) {
      metrics.telegramCallbacks.inc({ result: "used" });
      return answer(q.id, "This button was already used.");
    }
    let outcome: string;
    try {
      const who = q.from.username ? `@${q.from.username}` : `user ${userId}`;
      try {
        await executor
          // The token the executor minted for this button decides, once; the alerter's own credential decides nothing.
          .relayDecision({ action_id: row.action_id, decision: row.decision, channel: "telegram", actor, token: row.token, ...(row.decision === "reject" ? { detail: `rejected in Telegram by ${actor}` } : {}) })
          // A 2xx is a decision taken, even if its body were off the contract.
          .catch((err: unknown) => {
            if (!(err instanceof ApiBadResponse && err.status >= 200 && err.status < 300)) throw err;
          });
        outcome = row.decision === "approve" ? `✅ Approved by ${who} via Telegram` : `❌ Rejected by ${who} via Telegram`;
        metrics.telegramCallbacks.inc({ result: row.decision === "approve" ? "approved" : "rejected" });
      } catch (err) {
        // The executor answered but did not decide (already decided, gone, …): the operator reads why.
        if (!(err instanceof ApiError) || err instanceof ApiUnreachable) throw err;
        outcome = `⚠️ Could not ${row.decision}: ${err.message}`;
        metrics.telegramCallbacks.inc({ result: "refused" });
      }
    } catch (err) {
      // Nothing was decided: free the button so the operator can press it again.
      await sql`UPDATE telegram_callbacks SET used_at = NULL, used_by = NULL WHERE id = ${row.id}`;
      metrics.telegramCallbacks.inc({ result: "error" });
      logger.error({ action_id: row.action_id, err: (err as Error).message }, "telegram decision could not reach the executor");
      return answer(q.id, "The executor is unreachable; nothing was decided. Try again.", true);
    }
    await sql`UPDATE telegram_callbacks SET outcome = ${outcome} WHERE action_id = ${row.action_id} AND message_id IS NOT DISTINCT FROM (SELECT message_id FROM telegram_callbacks WHERE id = ${row.id})`;
    await answer(q.id, outcome.slice(0, 200));
    if (q.message) {
      const original = q.message.text ?? "";
      await api.editMessageText(q.message.chat.id, q.message.message_id, `${original}\n\n${outcome}`).catch((err: Error) => logger.warn({ err: err.message }, "editMessageText failed"));
    }
  }

  async function reply(chatId: number, text: string): Promise<void> {
    await api.sendMessage(chatId, text).catch((err: Error) => logger.warn({ err: err.message }, "telegram reply failed"));
  }

  async function waitForTask(chatId: number, taskId: string): Promise<void> {
    const deadline = Date.now() + deps.taskWaitMs;
    const every = deps.taskPollMs ?? 1000;
    while (Date.now() < deadline) {
      if (deps.signal?.aborted) return;
      await new Promise((r) => setTimeout(r, every));
      try {
        const d = await deps.planner!.task(taskId);
        const t = d.task;
        if (t.state === "succeeded") return reply(chatId, `Task ${taskId.slice(0, 8)} answered (${t.model_groups.join(", ") || "no model"}, $${t.cost_usd.toFixed(4)}):\n${t.answer ?? "(no answer text)"}`);
        if (t.state === "failed" || t.state === "expired" || t.state === "dead") return reply(chatId, `Task ${taskId.slice(0, 8)} ${t.state}: ${t.error ?? "no reason given"}`);
      } catch (err) {
        logger.warn({ task_id: taskId, err: (err as Error).message }, "polling a telegram task failed; retrying");
      }
    }
    await reply(chatId, `Task ${taskId.slice(0, 8)} is still running after ${Math.round(deps.taskWaitMs / 1000)} s; see \`steward task show ${taskId}\`.`);
  }

  async function onMessage(m: NonNullable<TgUpdate["message"]>, updateId: number): Promise<void> {
    const text = (m.text ?? "").trim();
    if (!text.startsWith("/") || !m.from) return;
    const [head = "", ...rest] = text.split(/\s+/);
    const command = head.split("@")[0]!.toLowerCase();
    const known = ["/status", "/task", "/help", "/start"];
    const label = known.includes(command) ? command.slice(1) : "unknown";
    if (!isAllowed(String(m.from.id), String(m.chat.id), deps.allowedUsers, deps.allowedChats)) {
      metrics.telegramCommands.inc({ command: label, result: "not_allowed" });
      logger.warn({ user_id: m.from.id, chat_id: m.chat.id, command: label }, "telegram command from a user/chat that is not allow-listed; refused");
      return reply(m.chat.id, "Not allowed: you are not on this bot's allow-list.");
    }
    switch (command) {
      case "/status": {
        metrics.telegramCommands.inc({ command: label, result: "ok" });
        return reply(m.chat.id, renderStatus(await deps.fleet()));
      }
      case "/task": {
        const content = rest.join(" ").trim();
        if (!content) return reply(m.chat.id, "Usage: /task <what you want to know or have done>");
        if (!deps.planner) {
          metrics.telegramCommands.inc({ command: label, result: "no_planner" });
          return reply(m.chat.id, "No planner is configured (PLANNER_URL), so tasks cannot be taken.");
        }
        try {
          const { task } = await deps.planner.submit({
            task_id: randomUUID(),
            content,
            source: "telegram",
            user: actorOf(m.from),
            conversation_id: `telegram:${m.chat.id}`,
            // Telegram re-delivers unconfirmed updates after a restart; the key makes that harmless.
            idempotency_key: `telegram:${updateId}`,
            restricted: false,
          });
          metrics.telegramCommands.inc({ command: label, result: "ok" });
          await reply(m.chat.id, `Task ${task.id.slice(0, 8)} queued; I will reply with the answer.`);
          track(waitForTask(m.chat.id, task.id));
        } catch (err) {
          metrics.telegramCommands.inc({ command: label, result: "error" });
          await reply(m.chat.id, `The planner did not take the task: ${(err as Error).message}`);
        }
        return;
      }
      default:
        metrics.telegramCommands.inc({ command: label, result: "ok" });
        return reply(m.chat.id, HELP);
    }
  }

  async function handle(u: TgUpdate): Promise<void> {
    try {
      if (u.callback_query) await onCallback(u.callback_query);
      else if (u.message) await onMessage(u.message, u.update_id);
    } catch (err) {
      // Database down: no reply (it would mislead), and the caller leaves the update undelivered so Telegram sends it again.
      if (isDatabaseUnreachable(err)) {
        metrics.telegramUpdatesDeferred.inc();
        logger.warn({ update_id: u.update_id, err: (err as Error).message }, "database unreachable: telegram update left for Telegram to deliver again");
        throw err;
      }
      logger.error({ update_id: u.update_id, err: (err as Error).message }, "handling a telegram update failed");
      if (u.callback_query) await answer(u.callback_query.id, "Something went wrong; nothing was decided.", true);
    }
  }

  const digest = (s: string) => createHash("sha256").update(s).digest();

  return {
    handle,
    async poll(signal, timeoutS) {
      let offset: number | undefined;
      let backoff = 1000;
      while (!signal.aborted) {
        try {
          const updates = await api.getUpdates(offset, timeoutS, signal);
          backoff = 1000;
          for (const raw of updates) {
            const u = TelegramUpdate.safeParse(raw);
            // Handled first, confirmed (offset past it) after: an update the database was down for is fetched again.
            if (u.success) await handle(u.data as TgUpdate);
            else logger.warn({ field: u.error.issues[0]?.path.join(".") ?? "" }, "telegram update off the expected shape; skipped");
            if (typeof raw?.update_id === "number" && Number.isSafeInteger(raw.update_id)) offset = raw.update_id + 1;
          }
        } catch (err) {
          if (signal.aborted) break;
          // The database coming back is a matter of seconds: its retries stay frequent.
          const dbDown = isDatabaseUnreachable(err);
          if (!dbDown) logger.warn({ err: (err as Error).message, retry_in_ms: backoff }, "telegram getUpdates failed; retrying");
          await sleep(backoff, signal);
          backoff = Math.min(dbDown ? 4_000 : 30_000, backoff * 2);
        }
      }
    },
    async webhook(req, res, secret) {
      const given = String(req.headers["x-telegram-bot-api-secret-token"] ?? "");
      if (!timingSafeEqual(digest(given), digest(secret)) || given === "") {
        logger.warn({ remote: req.socket.remoteAddress }, "telegram webhook call without the right secret token; refused");
        res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ error: { code: "unauthorized", message: "wrong or missing X-Telegram-Bot-Api-Secret-Token" } }));
        return;
      }
      // A refused body may be left unread: the connection closes, so no client reuses a socket the server drops.
      const refuse = (status: number, error: { code: string; message: string; field?: string }) =>
        res.writeHead(status, { "content-type": "application/json", ...(status === 413 ? { connection: "close" } : {}) }).end(JSON.stringify({ error }));
      let text: string;
      try {
        text = await readBodyText(req, MAX_WEBHOOK_BYTES);
      } catch (err) {
        if (!(err instanceof HttpError)) throw err;
        refuse(err.status, { code: "too_large", message: `request body is larger than ${MAX_WEBHOOK_BYTES} bytes` });
        return;
      }
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch {
        refuse(400, { code: "invalid_json", message: "body is not JSON (a Telegram Update)" });
        return;
      }
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
        refuse(400, { code: "invalid_json", message: "body must be a JSON object (a Telegram Update)" });
        return;
      }
      const parsed = TelegramUpdate.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const field = issue?.path.join(".") || "(body)";
        refuse(422, { code: "invalid", field, message: `${field}: ${issue?.message ?? "invalid"}` });
        return;
      }
      const u = parsed.data as TgUpdate;
      try {
        await handle(u);
      } catch (err) {
        if (!isDatabaseUnreachable(err)) throw err;
        // Telegram delivers a webhook update again until it gets a 2xx.
        refuse(503, DATABASE_UNREACHABLE);
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    },
    async idle() {
      await Promise.allSettled([...background]);
    },
  };
}

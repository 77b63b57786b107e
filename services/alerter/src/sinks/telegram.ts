import { randomBytes } from "node:crypto";
import type { Sql } from "@steward/platform/db";
import { renderText, type Sink } from "../notification.js";
import { TelegramError, type InlineKeyboard, type TelegramApi } from "../telegram-api.js";
import type { ExecutorClient } from "@steward/executor/client";
import { ALREADY_DECIDED, mintButtonTokens } from "./button-tokens.js";

/** Telegram refuses callback_data over 64 bytes; ours is an opaque id looked up in telegram_callbacks. */
export const CALLBACK_DATA_MAX_BYTES = 64;

export function newCallbackId(): string {
  // 16 random bytes → 22 base64url characters, far inside the limit, unguessable.
  return `c:${randomBytes(16).toString("base64url")}`;
}

/** Telegram rejects url buttons that point at loopback or private names; only a public console gets a button. */
export function publicUrl(u: string | undefined): string | undefined {
  if (!u) return undefined;
  try {
    const h = new URL(u).hostname;
    if (h === "localhost" || /^127\.|^10\.|^192\.168\.|^\[?::1\]?$/.test(h) || !h.includes(".")) return undefined;
    return u;
  } catch {
    return undefined;
  }
}

/**
 * Alerts to one chat. A pending action's message carries Approve/Reject buttons bound like ntfy's: the executor
 * mints a signed, single-use token for each, bound to the action, the decision, exactly what will run and an expiry;
 * the button carries an opaque id (callback_data holds 64 bytes) and the token waits in telegram_callbacks until a
 * press, from an allow-listed user and chat, redeems it at the executor (telegram-bot.ts).
 */
export function createTelegramSink(o: { api: TelegramApi; sql: Sql; chatId: string; consoleUrl: string | undefined; executor: Pick<ExecutorClient, "mintApprovalTokens"> }): Sink {
  return {
    name: "telegram",
    async send(p) {
      try {
        const text = renderText(p);
        if (p.action && p.rule === "action_pending" && p.kind !== "resolved") {
          const m = await mintButtonTokens(o.executor, p.action.id);
          if (!m.ok && !m.decided) return { ok: false, retry: true, error: m.error };
          if (!m.ok) {
            await o.api.sendMessage(o.chatId, `${text}\n${ALREADY_DECIDED}`);
            return { ok: true };
          }
          const ids = { approve: newCallbackId(), reject: newCallbackId() };
          for (const decision of ["approve", "reject"] as const) {
            await o.sql`INSERT INTO telegram_callbacks (id, action_id, decision, chat_id, token) VALUES (${ids[decision]}, ${p.action.id}, ${decision}, ${o.chatId}, ${m.tokens[decision].token})`;
          }
          const keyboard: InlineKeyboard = { inline_keyboard: [[{ text: "✅ Approve", callback_data: ids.approve }, { text: "❌ Reject", callback_data: ids.reject }]] };
          const view = publicUrl(o.consoleUrl);
          if (view) keyboard.inline_keyboard.push([{ text: "Open console", url: `${view}/actions/${encodeURIComponent(p.action.id)}` }]);
          const msg = await o.api.sendMessage(o.chatId, text, keyboard);
          await o.sql`UPDATE telegram_callbacks SET message_id = ${msg.message_id}, chat_id = ${String(msg.chat.id)} WHERE id IN (${ids.approve}, ${ids.reject})`;
          return { ok: true };
        }
        await o.api.sendMessage(o.chatId, text);
        return { ok: true };
      } catch (err) {
        if (err instanceof TelegramError) return { ok: false, retry: err.retryable, error: err.message };
        return { ok: false, retry: true, error: (err as Error).message };
      }
    },
  };
}

import { retryableStatus } from "./notification.js";

/** The Bot API calls Steward makes. Errors carry Telegram's status and description; the token never appears in them. */
export class TelegramError extends Error {
  constructor(readonly method: string, readonly status: number, readonly description: string, readonly retryAfterS?: number) {
    super(`telegram ${method}: ${status} ${description}`);
    this.name = "TelegramError";
  }
  get retryable(): boolean {
    return this.status === 0 || retryableStatus(this.status);
  }
}

export interface TgUser {
  id: number;
  is_bot?: boolean;
  first_name?: string;
  username?: string;
}
export interface TgMessage {
  message_id: number;
  chat: { id: number; type?: string };
  from?: TgUser;
  text?: string;
  date?: number;
}
export interface TgUpdate {
  update_id: number;
  message?: TgMessage;
  callback_query?: { id: string; from: TgUser; message?: TgMessage; data?: string };
}
export interface InlineKeyboard {
  inline_keyboard: { text: string; callback_data?: string; url?: string }[][];
}

export interface TelegramApi {
  call<T>(method: string, params: Record<string, unknown>, opts?: { signal?: AbortSignal; timeoutMs?: number }): Promise<T>;
  sendMessage(chatId: string | number, text: string, markup?: InlineKeyboard): Promise<TgMessage>;
  editMessageText(chatId: string | number, messageId: number, text: string, markup?: InlineKeyboard): Promise<void>;
  answerCallbackQuery(id: string, text: string, showAlert?: boolean): Promise<void>;
  getUpdates(offset: number | undefined, timeoutS: number, signal?: AbortSignal): Promise<TgUpdate[]>;
  setWebhook(url: string, secretToken: string): Promise<void>;
  deleteWebhook(): Promise<void>;
}

export function createTelegramApi(o: { apiUrl: string; token: string; timeoutMs: number; fetch?: typeof fetch }): TelegramApi {
  const f = o.fetch ?? fetch;
  async function call<T>(method: string, params: Record<string, unknown>, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<T> {
    let res: Response;
    const timeout = AbortSignal.timeout(opts.timeoutMs ?? o.timeoutMs);
    try {
      res = await f(`${o.apiUrl}/bot${o.token}/${method}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(params),
        signal: opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout,
      });
    } catch (err) {
      // Never echo the request URL: it holds the bot token.
      throw new TelegramError(method, 0, (err as Error).name === "AbortError" || (err as Error).name === "TimeoutError" ? "request aborted or timed out" : "request failed");
    }
    let j: { ok?: boolean; result?: T; description?: string; error_code?: number; parameters?: { retry_after?: number } } = {};
    try {
      j = (await res.json()) as typeof j;
    } catch {
      /* not JSON */
    }
    if (!res.ok || j.ok !== true) throw new TelegramError(method, res.status, j.description ?? `HTTP ${res.status}`, j.parameters?.retry_after);
    return j.result as T;
  }
  return {
    call,
    sendMessage: (chatId, text, markup) => call<TgMessage>("sendMessage", { chat_id: chatId, text: text.slice(0, 4096), disable_web_page_preview: true, ...(markup ? { reply_markup: markup } : {}) }),
    async editMessageText(chatId, messageId, text, markup) {
      await call("editMessageText", { chat_id: chatId, message_id: messageId, text: text.slice(0, 4096), ...(markup ? { reply_markup: markup } : {}) });
    },
    async answerCallbackQuery(id, text, showAlert = false) {
      await call("answerCallbackQuery", { callback_query_id: id, text: text.slice(0, 200), show_alert: showAlert });
    },
    getUpdates: (offset, timeoutS, signal) =>
      call<TgUpdate[]>("getUpdates", { ...(offset !== undefined ? { offset } : {}), timeout: timeoutS, allowed_updates: ["message", "callback_query"] }, { ...(signal ? { signal } : {}), timeoutMs: (timeoutS + 10) * 1000 }),
    async setWebhook(url, secretToken) {
      await call("setWebhook", { url, secret_token: secretToken, allowed_updates: ["message", "callback_query"] });
    },
    async deleteWebhook() {
      await call("deleteWebhook", {});
    },
  };
}

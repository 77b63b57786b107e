import type { IncomingMessage } from "node:http";
import { listenOnLoopback, readText } from "./loopback-server.js";
import { randomBytes } from "node:crypto";

/**
 * A local server speaking the Telegram Bot API subset a bot uses: `/bot<token>/<method>` with JSON or query
 * parameters; getMe, getUpdates (long polling with offset/timeout/limit, 409 while a webhook is set), sendMessage
 * (with reply_markup.inline_keyboard; callback_data over 64 bytes is refused like Telegram does), answerCallbackQuery,
 * editMessageText, setWebhook (secret_token) and deleteWebhook. Tests inject user messages and button presses; with a
 * webhook set they are POSTed to it with `X-Telegram-Bot-Api-Secret-Token`, otherwise queued for getUpdates.
 */
export interface TgUser {
  id: number;
  is_bot: boolean;
  first_name: string;
  username?: string;
}
export interface TgChat {
  id: number;
  type: "private" | "group" | "supergroup" | "channel";
  title?: string;
}
export interface TgButton {
  text: string;
  callback_data?: string;
  url?: string;
}
export interface TgMessage {
  message_id: number;
  date: number;
  chat: TgChat;
  from?: TgUser;
  text?: string;
  reply_markup?: { inline_keyboard: TgButton[][] };
}
export interface TgCallbackQuery {
  id: string;
  from: TgUser;
  message?: TgMessage;
  chat_instance: string;
  data?: string;
}
export interface TgUpdate {
  update_id: number;
  message?: TgMessage;
  callback_query?: TgCallbackQuery;
}

export interface FakeTelegram {
  /** API base URL: the bot calls `${apiUrl}/bot<token>/<method>`. */
  apiUrl: string;
  token: string;
  bot: TgUser;
  /** Messages the bot sent (current content: edits apply), in order. */
  sent: TgMessage[];
  edits: { chat_id: string; message_id: number; text: string; reply_markup?: unknown }[];
  answers: { callback_query_id: string; text?: string; show_alert?: boolean }[];
  webhook: { url: string; secret_token?: string } | null;
  /** Every method call, for assertions like "getUpdates was used". */
  calls: { method: string; params: Record<string, unknown> }[];
  /** Webhook deliveries: the status the bot's endpoint answered. */
  deliveries: { update_id: number; status: number }[];
  /**
   * Telegram delivers a webhook update again until the bot answers 2xx: sends every update whose last delivery was
   * not 2xx once more; resolves with how many were sent.
   */
  redeliverFailed(): Promise<number>;
  /** The next `n` calls of `method` (or any method) answer 500/`status`. */
  failNext(n: number, method?: string, status?: number): void;
  injectMessage(o: { from: TgUser; chat: TgChat; text: string }): Promise<TgUpdate>;
  /** A press of an inline button of a message the bot sent. */
  injectCallback(o: { from: TgUser; chat?: TgChat; message_id: number; data: string }): Promise<TgUpdate>;
  waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs?: number): Promise<T>;
  close(): Promise<void>;
}

type Params = Record<string, unknown>;

class ApiFailure extends Error {
  constructor(readonly code: number, readonly description: string, readonly retryAfter?: number) {
    super(description);
  }
}

async function readParams(req: IncomingMessage, url: URL): Promise<Params> {
  const text = await readText(req);
  const out: Params = Object.fromEntries(url.searchParams.entries());
  if (text.trim() === "") return out;
  const ct = req.headers["content-type"] ?? "";
  if (ct.includes("application/json")) {
    const j = JSON.parse(text) as Params;
    return { ...out, ...j };
  }
  for (const [k, v] of new URLSearchParams(text)) out[k] = v;
  return out;
}

const asJson = (v: unknown): unknown => {
  if (typeof v !== "string") return v;
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
};

export async function startFakeTelegram(opts: { token?: string } = {}): Promise<FakeTelegram> {
  const token = opts.token ?? `${100000 + Math.floor(Math.random() * 899999)}:${randomBytes(18).toString("base64url")}`;
  const bot: TgUser = { id: Number(token.split(":")[0]) || 4242, is_bot: true, first_name: "Steward", username: "steward_test_bot" };
  const sent: TgMessage[] = [];
  const edits: FakeTelegram["edits"] = [];
  const answers: FakeTelegram["answers"] = [];
  const calls: FakeTelegram["calls"] = [];
  const deliveries: FakeTelegram["deliveries"] = [];
  const pendingQueries = new Set<string>();
  let queue: TgUpdate[] = [];
  let nextUpdateId = 1000;
  let nextMessageId = 1;
  let webhook: FakeTelegram["webhook"] = null;
  let failures = 0;
  let failMethod: string | undefined;
  let failStatus = 500;
  const pollers = new Set<() => void>();
  const wake = () => {
    for (const p of [...pollers]) p();
  };

  function getUpdates(p: Params): Promise<TgUpdate[]> {
    if (webhook) throw new ApiFailure(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first");
    const offset = p["offset"] !== undefined ? Number(p["offset"]) : undefined;
    if (offset !== undefined && Number.isFinite(offset)) queue = queue.filter((u) => u.update_id >= offset);
    const limit = Math.min(100, Math.max(1, Number(p["limit"] ?? 100)));
    const timeoutS = Math.max(0, Number(p["timeout"] ?? 0));
    const ready = () => queue.slice(0, limit);
    if (queue.length > 0 || timeoutS === 0) return Promise.resolve(ready());
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        pollers.delete(done);
        resolve(ready());
      };
      const t = setTimeout(done, timeoutS * 1000);
      pollers.add(done);
    });
  }

  function chatIdOf(p: Params): string {
    const c = p["chat_id"];
    if (c === undefined || c === "") throw new ApiFailure(400, "Bad Request: chat_id is empty");
    return String(c);
  }

  function checkMarkup(raw: unknown): TgMessage["reply_markup"] | undefined {
    const m = asJson(raw) as { inline_keyboard?: TgButton[][] } | undefined;
    if (!m) return undefined;
    if (!Array.isArray(m.inline_keyboard)) throw new ApiFailure(400, "Bad Request: can't parse reply keyboard markup JSON object");
    for (const row of m.inline_keyboard) {
      for (const b of row) {
        if (!b.text) throw new ApiFailure(400, "Bad Request: text buttons are unallowed in the inline keyboard");
        if (b.callback_data !== undefined && (Buffer.byteLength(b.callback_data, "utf8") > 64 || b.callback_data.length === 0)) throw new ApiFailure(400, "Bad Request: BUTTON_DATA_INVALID");
      }
    }
    return { inline_keyboard: m.inline_keyboard };
  }

  async function call(method: string, p: Params): Promise<unknown> {
    switch (method) {
      case "getMe":
        return bot;
      case "getUpdates":
        return getUpdates(p);
      case "setWebhook": {
        const url = String(p["url"] ?? "");
        const secret = p["secret_token"] === undefined ? undefined : String(p["secret_token"]);
        if (secret !== undefined && !/^[A-Za-z0-9_-]{1,256}$/.test(secret)) throw new ApiFailure(400, "Bad Request: secret token contains unallowed characters");
        webhook = url ? { url, ...(secret !== undefined ? { secret_token: secret } : {}) } : null;
        wake();
        return true;
      }
      case "deleteWebhook":
        webhook = null;
        return true;
      case "sendMessage": {
        const chatId = chatIdOf(p);
        const text = String(p["text"] ?? "");
        if (text.trim() === "") throw new ApiFailure(400, "Bad Request: message text is empty");
        if (text.length > 4096) throw new ApiFailure(400, "Bad Request: message is too long");
        const markup = checkMarkup(p["reply_markup"]);
        const msg: TgMessage = { message_id: nextMessageId++, date: Math.floor(Date.now() / 1000), chat: { id: Number(chatId), type: Number(chatId) < 0 ? "group" : "private" }, from: bot, text, ...(markup ? { reply_markup: markup } : {}) };
        sent.push(msg);
        return msg;
      }
      case "editMessageText": {
        const chatId = chatIdOf(p);
        const id = Number(p["message_id"]);
        const msg = sent.find((m) => m.message_id === id && String(m.chat.id) === chatId);
        if (!msg) throw new ApiFailure(400, "Bad Request: message to edit not found");
        const text = String(p["text"] ?? "");
        if (text.trim() === "") throw new ApiFailure(400, "Bad Request: message text is empty");
        const markup = checkMarkup(p["reply_markup"]);
        if (msg.text === text && JSON.stringify(msg.reply_markup) === JSON.stringify(markup)) {
          throw new ApiFailure(400, "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message");
        }
        msg.text = text;
        if (markup) msg.reply_markup = markup;
        else delete msg.reply_markup;
        edits.push({ chat_id: chatId, message_id: id, text, ...(markup ? { reply_markup: markup } : {}) });
        return msg;
      }
      case "answerCallbackQuery": {
        const id = String(p["callback_query_id"] ?? "");
        if (!pendingQueries.has(id)) throw new ApiFailure(400, "Bad Request: query is too old and response timeout expired or query ID is invalid");
        pendingQueries.delete(id);
        answers.push({ callback_query_id: id, ...(p["text"] !== undefined ? { text: String(p["text"]) } : {}), ...(p["show_alert"] !== undefined ? { show_alert: Boolean(asJson(p["show_alert"])) } : {}) });
        return true;
      }
      default:
        throw new ApiFailure(404, "Not Found: method not found");
    }
  }

  const { url, close: closeServer } = await listenOnLoopback((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://localhost");
      const m = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(url.pathname);
      const reply = (status: number, body: unknown) => res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
      if (!m) return reply(404, { ok: false, error_code: 404, description: "Not Found" });
      if (m[1] !== token) return reply(401, { ok: false, error_code: 401, description: "Unauthorized" });
      const method = m[2] ?? "";
      try {
        const params = await readParams(req, url);
        calls.push({ method, params });
        if (failures > 0 && (!failMethod || failMethod === method)) {
          failures--;
          throw new ApiFailure(failStatus, failStatus === 429 ? "Too Many Requests: retry after 1" : "Internal Server Error", failStatus === 429 ? 1 : undefined);
        }
        reply(200, { ok: true, result: await call(method, params) });
      } catch (err) {
        if (err instanceof ApiFailure) return reply(err.code, { ok: false, error_code: err.code, description: err.description, ...(err.retryAfter ? { parameters: { retry_after: err.retryAfter } } : {}) });
        reply(400, { ok: false, error_code: 400, description: `Bad Request: ${(err as Error).message}` });
      }
    })();
  });

  /** Each webhook update and the status its latest delivery got. */
  const latest = new Map<number, { update: TgUpdate; status: number }>();

  async function deliver(u: TgUpdate): Promise<void> {
    if (!webhook) {
      queue.push(u);
      wake();
      return;
    }
    const r = await fetch(webhook.url, {
      method: "POST",
      headers: { "content-type": "application/json", ...(webhook.secret_token ? { "x-telegram-bot-api-secret-token": webhook.secret_token } : {}) },
      body: JSON.stringify(u),
    }).catch(() => undefined);
    deliveries.push({ update_id: u.update_id, status: r?.status ?? 0 });
    latest.set(u.update_id, { update: u, status: r?.status ?? 0 });
    await r?.text().catch(() => undefined);
  }

  return {
    apiUrl: url,
    token,
    bot,
    sent,
    edits,
    answers,
    calls,
    deliveries,
    get webhook() {
      return webhook;
    },
    async redeliverFailed() {
      const failed = [...latest.values()].filter((d) => d.status < 200 || d.status > 299);
      for (const d of failed) await deliver(d.update);
      return failed.length;
    },
    failNext(n, method, status = 500) {
      failures = n;
      failMethod = method;
      failStatus = status;
    },
    async injectMessage(o) {
      const u: TgUpdate = { update_id: nextUpdateId++, message: { message_id: nextMessageId++, date: Math.floor(Date.now() / 1000), chat: o.chat, from: o.from, text: o.text } };
      await deliver(u);
      return u;
    },
    async injectCallback(o) {
      const msg = sent.find((m) => m.message_id === o.message_id);
      if (!msg) throw new Error(`fake telegram: the bot sent no message ${o.message_id}`);
      const id = randomBytes(8).toString("hex");
      pendingQueries.add(id);
      const message = o.chat ? { ...msg, chat: o.chat } : msg;
      const u: TgUpdate = { update_id: nextUpdateId++, callback_query: { id, from: o.from, message: structuredClone(message), chat_instance: "ci-" + String(message.chat.id), data: o.data } };
      await deliver(u);
      return u;
    },
    async waitFor(what, fn, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const v = fn();
        if (v !== undefined && v !== false) return v;
        if (Date.now() > deadline) throw new Error(`fake telegram: timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    close: () => {
      for (const p of [...pollers]) p();
      return closeServer();
    },
  };
}

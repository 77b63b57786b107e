import { listenOnLoopback, readText } from "./loopback-server.js";
import { randomBytes } from "node:crypto";

/**
 * A local server speaking ntfy's publish API, for tests: JSON publish to the base URL (`{topic, title, message, tags,
 * priority, click, actions}`) and plain publish to `/<topic>` with X-Title/X-Tags/X-Priority headers. It validates
 * what real ntfy validates (topic, priority 1-5, at most 3 actions, each `view`/`http`/`broadcast` with a label, and a
 * url for view/http), records what was published, checks an access token when given one, and can be told to fail.
 */
export interface NtfyAction {
  action: "view" | "http" | "broadcast";
  label: string;
  url?: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  clear?: boolean;
}

export interface NtfyPublished {
  id: string;
  time: number;
  topic: string;
  title?: string;
  message: string;
  tags: string[];
  priority: number;
  click?: string;
  actions: NtfyAction[];
  /** request headers as received (lower-case names) */
  headers: Record<string, string>;
  /** when it arrived, performance.now() of this process */
  receivedAt: number;
}

export interface FakeNtfy {
  url: string;
  published: NtfyPublished[];
  /** Requests answered with an error (injected failures and invalid publishes). */
  rejected: { status: number; reason: string }[];
  /** The next `n` publishes get `status` (default 503). */
  failNext(n: number, status?: number): void;
  waitFor(pred: (m: NtfyPublished) => boolean, timeoutMs?: number): Promise<NtfyPublished>;
  /** Presses an action button the way the ntfy app does: an http action sends its request; returns the response. */
  press(m: NtfyPublished, label: string): Promise<{ status: number; body: unknown }>;
  close(): Promise<void>;
}

export interface FakeNtfyOptions {
  /** When set, publishing needs `Authorization: Bearer <token>`. */
  token?: string;
}


const TOPIC = /^[-_A-Za-z0-9]{1,64}$/;

function ntfyError(code: number, http: number, error: string): string {
  return JSON.stringify({ code, http, error });
}

function validateActions(raw: unknown): NtfyAction[] | string {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) return "actions must be an array";
  if (raw.length > 3) return "too many actions, only 3 allowed";
  const out: NtfyAction[] = [];
  for (const a of raw as Record<string, unknown>[]) {
    if (!a || typeof a !== "object") return "action invalid";
    if (a["action"] !== "view" && a["action"] !== "http" && a["action"] !== "broadcast") return `action '${String(a["action"])}' unknown`;
    if (typeof a["label"] !== "string" || a["label"] === "") return "action label missing";
    if ((a["action"] === "view" || a["action"] === "http") && (typeof a["url"] !== "string" || !/^https?:\/\//.test(a["url"]))) return "action url missing or invalid";
    if (a["headers"] !== undefined && (typeof a["headers"] !== "object" || a["headers"] === null)) return "action headers invalid";
    if (a["body"] !== undefined && typeof a["body"] !== "string") return "action body must be a string";
    out.push(a as unknown as NtfyAction);
  }
  return out;
}

export async function startFakeNtfy(opts: FakeNtfyOptions = {}): Promise<FakeNtfy> {
  const published: NtfyPublished[] = [];
  const rejected: { status: number; reason: string }[] = [];
  let failures = 0;
  let failStatus = 503;
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of [...waiters]) w();
  };

  const { url, close: closeServer } = await listenOnLoopback((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? "/", "http://localhost");
      const reply = (status: number, text: string) => {
        res.writeHead(status, { "content-type": "application/json" }).end(text + "\n");
      };
      const reject = (status: number, code: number, reason: string) => {
        rejected.push({ status, reason });
        reply(status, ntfyError(code, status, reason));
      };
      const text = await readText(req);
      if (req.method !== "POST" && req.method !== "PUT") return reject(405, 40500, "method not allowed");
      if (opts.token && req.headers.authorization !== `Bearer ${opts.token}`) return reject(401, 40101, "unauthorized");
      if (failures > 0) {
        failures--;
        return reject(failStatus, failStatus * 100, "injected failure");
      }
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(",") : String(v ?? "")]));
      let msg: Omit<NtfyPublished, "id" | "time" | "headers" | "receivedAt">;
      if (url.pathname === "/" || url.pathname === "") {
        let j: Record<string, unknown>;
        try {
          j = JSON.parse(text) as Record<string, unknown>;
        } catch {
          return reject(400, 40017, "invalid request: json invalid");
        }
        if (typeof j["topic"] !== "string" || !TOPIC.test(j["topic"])) return reject(400, 40009, "invalid request: topic invalid");
        const pr = j["priority"] ?? 3;
        if (typeof pr !== "number" || !Number.isInteger(pr) || pr < 1 || pr > 5) return reject(400, 40007, "invalid priority");
        if (j["tags"] !== undefined && (!Array.isArray(j["tags"]) || j["tags"].some((t) => typeof t !== "string"))) return reject(400, 40017, "invalid request: tags invalid");
        const actions = validateActions(j["actions"]);
        if (typeof actions === "string") return reject(400, 40018, `invalid request: ${actions}`);
        msg = {
          topic: j["topic"],
          message: typeof j["message"] === "string" ? j["message"] : "triggered",
          tags: (j["tags"] as string[] | undefined) ?? [],
          priority: pr,
          actions,
          ...(typeof j["title"] === "string" ? { title: j["title"] } : {}),
          ...(typeof j["click"] === "string" ? { click: j["click"] } : {}),
        };
      } else {
        const topic = url.pathname.slice(1);
        if (!TOPIC.test(topic)) return reject(400, 40009, "invalid request: topic invalid");
        const pr = Number(headers["x-priority"] ?? 3);
        msg = {
          topic,
          message: text || "triggered",
          tags: headers["x-tags"] ? headers["x-tags"].split(",").map((t) => t.trim()) : [],
          priority: Number.isInteger(pr) && pr >= 1 && pr <= 5 ? pr : 3,
          actions: [],
          ...(headers["x-title"] ? { title: headers["x-title"] } : {}),
        };
      }
      const full: NtfyPublished = { ...msg, id: randomBytes(6).toString("hex"), time: Math.floor(Date.now() / 1000), headers, receivedAt: performance.now() };
      published.push(full);
      reply(200, JSON.stringify({ id: full.id, time: full.time, event: "message", topic: full.topic, message: full.message }));
      notify();
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });

  return {
    url,
    published,
    rejected,
    failNext(n, status = 503) {
      failures = n;
      failStatus = status;
    },
    waitFor(pred, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = published.find(pred);
          if (m) {
            clearTimeout(t);
            waiters.delete(check);
            resolve(m);
          }
        };
        const t = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`fake ntfy: no matching publish within ${timeoutMs} ms (got ${published.length}: ${published.map((p) => p.title ?? p.message).join(" | ")})`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async press(m, label) {
      const a = m.actions.find((x) => x.label === label);
      if (!a) throw new Error(`fake ntfy: message has no action labelled '${label}'`);
      if (a.action !== "http" || !a.url) throw new Error(`fake ntfy: action '${label}' is not an http action`);
      const r = await fetch(a.url, { method: a.method ?? "POST", headers: a.headers ?? {}, ...(a.body !== undefined ? { body: a.body } : {}) });
      const t = await r.text();
      let parsed: unknown = t;
      try {
        parsed = JSON.parse(t);
      } catch {
        /* not JSON */
      }
      return { status: r.status, body: parsed };
    },
    close: closeServer,
  };
}

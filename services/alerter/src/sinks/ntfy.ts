import type { NtfySinkConfig } from "../config.js";
import type { ExecutorClient, MintedTokens } from "@steward/executor/client";
import { describeAction, type NotificationPayload, type Sink } from "../notification.js";
import { postJson } from "./http.js";
import { ALREADY_DECIDED, mintButtonTokens } from "./button-tokens.js";

export interface NtfyAction {
  action: "view" | "http";
  label: string;
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  clear?: boolean;
}

export interface NtfyMessage {
  topic: string;
  title: string;
  message: string;
  tags: string[];
  priority: number;
  click?: string;
  actions?: NtfyAction[];
}

const PRIORITY = { critical: 5, warning: 4, info: 3 } as const;
const TAGS = { critical: "rotating_light", warning: "warning", info: "information_source" } as const;

/**
 * Pure: the ntfy JSON publish body for a notification. With `tokens`, Approve/Reject buttons: http buttons that call
 * the executor when the tokens decide by themselves (an access-controlled topic), or view buttons that open the
 * console's confirmation page when they are confirm-only (an open topic: whoever reads it could press them).
 */
export function ntfyMessage(p: NotificationPayload, o: { topic: string; consoleUrl?: string | undefined; executorPublicUrl: string; tokens?: Pick<MintedTokens, "action_id" | "expires_at" | "approve" | "reject"> | undefined }): NtfyMessage {
  const resolved = p.kind === "resolved";
  const lines = [resolved && p.note ? p.note : p.message];
  if (p.action && !resolved) lines.push(`Will run: ${describeAction(p.action)}`, `Expires: ${p.action.expires_at}`);
  const view = o.consoleUrl ? (p.action ? `${o.consoleUrl}/actions/${encodeURIComponent(p.action.id)}` : o.consoleUrl) : undefined;
  const actions: NtfyAction[] = [];
  if (o.tokens && p.action && !resolved) {
    const button = (label: string, path: string, token: string): NtfyAction =>
      path.startsWith("/console/")
        ? { action: "view", label: `${label}…`, url: `${o.executorPublicUrl}${path}` }
        : { action: "http", label, url: `${o.executorPublicUrl}${path}`, method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token }), clear: true };
    actions.push(button("Approve", o.tokens.approve.path, o.tokens.approve.token), button("Reject", o.tokens.reject.path, o.tokens.reject.token));
  }
  if (view) actions.push({ action: "view", label: "Console", url: view });
  return {
    topic: o.topic,
    title: `${resolved ? "Resolved: " : p.kind === "renotify" ? "Still firing: " : ""}${p.title}`,
    message: lines.join("\n"),
    tags: [resolved ? "white_check_mark" : TAGS[p.severity], "steward"],
    priority: resolved ? 2 : PRIORITY[p.severity],
    ...(view ? { click: view } : {}),
    ...(actions.length > 0 ? { actions } : {}),
  };
}

export function createNtfySink(cfg: NtfySinkConfig, o: { executor: ExecutorClient; executorPublicUrl: string; consoleUrl: string | undefined; timeoutMs: number; fetch?: typeof fetch }): Sink {
  return {
    name: "ntfy",
    async send(p) {
      let tokens: MintedTokens | undefined;
      let payload = p;
      if (p.action && p.rule === "action_pending" && p.kind !== "resolved") {
        // On an open topic the buttons are confirm-only: reading the topic must not be enough to decide.
        const m = await mintButtonTokens(o.executor, p.action.id, { confirm: !cfg.protectedTopic });
        if (m.ok) tokens = m.tokens;
        else if (m.decided) payload = { ...p, message: `${p.message}\n${ALREADY_DECIDED}` };
        else return { ok: false, retry: true, error: m.error };
      }
      const body = ntfyMessage(payload, { topic: cfg.topic, consoleUrl: o.consoleUrl, executorPublicUrl: o.executorPublicUrl, tokens });
      return postJson(`${cfg.url}/`, body, cfg.token ? { authorization: `Bearer ${cfg.token}` } : {}, o.timeoutMs, o.fetch);
    },
  };
}

/** The executor's approval routes (services/executor/src/http-approvals.ts), with the API token. */
export interface MintedTokens {
  action_id: string;
  expires_at: string;
  approve: { token: string; path: string };
  reject: { token: string; path: string };
}

export type ExecutorAnswer = { status: number; ok: boolean; message: string; state?: string; body: unknown };

export class ExecutorUnreachable extends Error {
  constructor(readonly url: string, cause: string) {
    super(`cannot reach the executor at ${url}: ${cause}`);
    this.name = "ExecutorUnreachable";
  }
}

export interface ExecutorClient {
  mintTokens(actionId: string): Promise<MintedTokens>;
  decide(o: { actionId: string; decision: "approve" | "reject" | "refuse"; channel: "telegram" | "ntfy"; actor: string; detail?: string }): Promise<ExecutorAnswer>;
}

export function createExecutorClient(o: { url: string; token: string; timeoutMs: number; fetch?: typeof fetch }): ExecutorClient {
  const f = o.fetch ?? fetch;
  async function post(path: string, body: unknown): Promise<ExecutorAnswer> {
    let res: Response;
    try {
      res = await f(`${o.url}${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${o.token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(o.timeoutMs),
      });
    } catch (err) {
      throw new ExecutorUnreachable(o.url, (err as Error).message);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    const j = json as { error?: { message?: string; state?: string }; action?: { state?: string }; message?: string } | undefined;
    return { status: res.status, ok: res.ok, message: j?.error?.message ?? j?.message ?? `HTTP ${res.status}`, state: j?.action?.state ?? j?.error?.state, body: json };
  }
  return {
    async mintTokens(actionId) {
      const r = await post("/approvals/tokens", { action_id: actionId });
      if (!r.ok) throw Object.assign(new Error(`executor refused to mint approval tokens: ${r.status} ${r.message}`), { status: r.status });
      return r.body as MintedTokens;
    },
    decide(d) {
      return post("/approvals/channel", { action_id: d.actionId, decision: d.decision, channel: d.channel, actor: d.actor, ...(d.detail ? { detail: d.detail } : {}) });
    },
  };
}

import { retryableStatus, type SendResult } from "../notification.js";

/** POSTs JSON and classifies the outcome: network errors, timeouts, 408/425/429 and 5xx are worth a retry. */
export async function postJson(url: string, body: unknown, headers: Record<string, string>, timeoutMs: number, f: typeof fetch = fetch): Promise<SendResult & { status?: number; text?: string }> {
  let res: Response;
  try {
    res = await f(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    return { ok: false, retry: true, error: `request failed: ${(err as Error).message}` };
  }
  const text = await res.text().catch(() => "");
  if (res.ok) return { ok: true, status: res.status, text };
  return { ok: false, retry: retryableStatus(res.status), error: `HTTP ${res.status}: ${text.slice(0, 300)}`, status: res.status, text };
}

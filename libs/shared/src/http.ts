import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";

/** An HTTP answer other than success, with the JSON error body the operator (or CLI) reads. */
export class HttpError extends Error {
  constructor(readonly status: number, readonly body: { code: string; message: string; [k: string]: unknown }) {
    super(body.message);
    this.name = "HttpError";
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, extraHeaders: Record<string, string> = {}): void {
  const json = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(json), ...extraHeaders });
  res.end(json);
}

/** Reads a request body as text, refusing (413) more than `maxBytes` whether declared or streamed. */
export async function readBodyText(req: IncomingMessage, maxBytes: number): Promise<string> {
  const tooLarge = () => new HttpError(413, { code: "too_large", message: `request body is larger than ${maxBytes} bytes` });
  if (Number(req.headers["content-length"] ?? 0) > maxBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

const digest = (s: string): Buffer => createHash("sha256").update(s).digest();

/** Constant-time bearer check: both sides are hashed first so their lengths never leak either. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(header ?? "");
  const given = m?.[1]?.trim() ?? "";
  return timingSafeEqual(digest(given), digest(token)) && given.length > 0;
}

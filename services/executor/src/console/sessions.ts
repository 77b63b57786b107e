import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { CredentialRole } from "@steward/contracts/executor-api";

export interface Session {
  id: string;
  /** Sent in every form; checked on every POST. Never the session id itself. */
  csrf: string;
  /** The name of the credential signed in with: the `actor` of what they approve or reject. */
  actor: string;
  /** That credential's role: a viewer sees the console but decides nothing. */
  role: CredentialRole;
  createdAt: number;
  expiresAt: number;
  /** One-shot message shown on the next page (e.g. "approved restart of node-1/web"). */
  flash?: { kind: "ok" | "error"; text: string } | undefined;
}

export const SESSION_COOKIE = "steward_console";

const digest = (s: string): Buffer => createHash("sha256").update(s).digest();

/** Constant-time string comparison (hashed first so lengths do not leak). */
export function sameSecret(given: string, want: string): boolean {
  return timingSafeEqual(digest(given), digest(want)) && given.length > 0;
}

/**
 * Console sessions in memory: restarting the executor signs everyone out, which is acceptable for an
 * operator console and keeps session secrets off disk. Bounded, oldest evicted first.
 */
export function createSessionStore(opts: { ttlMs: number; max?: number; now?: () => number }) {
  const now = opts.now ?? Date.now;
  const max = opts.max ?? 1000;
  const sessions = new Map<string, Session>();

  function sweep(): void {
    const t = now();
    for (const [id, s] of sessions) if (s.expiresAt <= t) sessions.delete(id);
    while (sessions.size > max) {
      const oldest = sessions.keys().next();
      if (oldest.done) break;
      sessions.delete(oldest.value);
    }
  }

  return {
    create(actor: string, role: CredentialRole): Session {
      sweep();
      const t = now();
      const s: Session = { id: randomBytes(32).toString("base64url"), csrf: randomBytes(32).toString("base64url"), actor, role, createdAt: t, expiresAt: t + opts.ttlMs };
      sessions.set(s.id, s);
      sweep();
      return s;
    },
    get(id: string | undefined): Session | undefined {
      if (!id) return undefined;
      const s = sessions.get(id);
      if (!s) return undefined;
      if (s.expiresAt <= now()) {
        sessions.delete(id);
        return undefined;
      }
      return s;
    },
    destroy(id: string): void {
      sessions.delete(id);
    },
    get size(): number {
      return sessions.size;
    },
  };
}

export type SessionStore = ReturnType<typeof createSessionStore>;

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i < 0) continue;
    const k = part.slice(0, i).trim();
    const v = part.slice(i + 1).trim();
    if (k && !(k in out)) out[k] = v;
  }
  return out;
}

export function sessionCookie(id: string, maxAgeS: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${secure ? "; Secure" : ""}`;
}

export function clearedCookie(secure: boolean): string {
  return sessionCookie("", 0, secure);
}

export type OriginCheck = { ok: true } | { ok: false; reason: string };

/**
 * A state-changing request must carry an Origin naming this very host. Browsers send Origin on every
 * cross-site and same-site POST; a missing or `null` Origin is refused rather than trusted.
 */
export function checkOrigin(origin: string | undefined, host: string | undefined): OriginCheck {
  if (!origin || origin === "null") return { ok: false, reason: "the request has no Origin header" };
  let o: URL;
  try {
    o = new URL(origin);
  } catch {
    return { ok: false, reason: "the Origin header is not a URL" };
  }
  // Behind a reverse proxy the Host header must be passed through (nginx: proxy_set_header Host $host).
  if (!host || o.host.toLowerCase() !== host.toLowerCase()) return { ok: false, reason: `origin ${o.origin} is not this console` };
  return { ok: true };
}

/** Redaction of secret-looking values in free text (logs, prompts, tool output): one implementation for every service. */
const SECRET_NAME = "[A-Za-z0-9_.-]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?)[A-Za-z0-9_.-]*";

/** Whether a variable's name looks like it holds a secret (`DB_PASSWORD`, `API_KEY`, `GITHUB_TOKEN`, …). */
export function looksSecretName(name: string): boolean {
  return new RegExp(`^${SECRET_NAME}$`, "i").test(name);
}

/** Masks values that look secret in free text (KEY=value pairs with secret-like names, bearer tokens, URL passwords). */
export function redactSecretsInText(text: string, knownValues: readonly string[] = []): string {
  let out = text
    .replace(new RegExp(`\\b(${SECRET_NAME})(\\s*[=:]\\s*)("[^"]*"|'[^']*'|\\S+)`, "gi"), "$1$2[redacted]")
    .replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, "$1 [redacted]")
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/[^:@\s/]+):([^@\s]+)@/gi, "$1:[redacted]@")
    .replace(/\bsk-[A-Za-z0-9_-]{16,}/g, "[redacted]");
  for (const v of knownValues) if (v.length >= 4) out = out.split(v).join("[redacted]");
  return out;
}

/**
 * Credentials inside every URL in a free text (git's stderr, a compose error): `scheme://anything@` becomes
 * `scheme://***@`, user and password alike, since a user alone is often a token (`https://ghp_x@github.com`).
 */
export function redactUrlCredentialsInText(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/\s@]+@/gi, "$1***@");
}

/** Query parameters that carry credentials in connection URLs (`?password=` for libpq, `?token=`, `?sslkey=` paths are harmless but cheap to hide). */
const SECRET_PARAM = /pass|secret|token|key|cred|auth/i;

/**
 * A connection URL for logs and error messages: credentials become `***`, scheme, host:port and path stay.
 * NATS_URL lists several servers separated by commas (as docker-compose.yml does); each one is redacted on its own.
 * A part that does not parse prints as `(unparseable url)`, never as itself: it may hold a password.
 */
export function redactUrl(url: string): string {
  const parts = url.split(",").map((part) => part.trim()).filter((part) => part !== "");
  if (parts.length === 0) return "(empty url)";
  // `nats://u:12,34@h` is one URL whose password holds a comma: split, `nats://u:12` would print "12" as a port.
  // A schemeless part with an `@` after one with a scheme is such a tail: redact the whole string as one URL then.
  const splitInsideCredentials = hasScheme(parts[0]!) && parts.slice(1).some((p) => !hasScheme(p) && p.includes("@"));
  return splitInsideCredentials ? redactOneUrl(url.trim()) : parts.map(redactOneUrl).join(",");
}

function hasScheme(s: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(s);
}

/**
 * Masks the userinfo before any parser sees it: a password holding a raw `/`, `?` or `#` (an unencoded
 * `openssl rand -base64` value) ends the authority early, so a URL parser would print part of it as a port or a path.
 * Userinfo is everything up to the last `@`; a username (before the first `:`) stays when a password follows it.
 */
function maskUserinfo(raw: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)?(.*)@([^@]*)$/is.exec(raw);
  if (!m) return raw;
  const userinfo = m[2] ?? "";
  const colon = userinfo.indexOf(":");
  const user = colon > 0 ? userinfo.slice(0, colon) : "";
  const masked = colon >= 0 && /^[\w.~%!$&'()*+;=-]+$/.test(user) ? `${user}:***` : "***";
  return `${m[1] ?? ""}${masked}@${m[3] ?? ""}`;
}

function redactOneUrl(input: string): string {
  const raw = maskUserinfo(input);
  // NATS accepts `host:4222` and `user:pass@host:4222` without a scheme; parsed as-is, `user:` would be the scheme and
  // `pass@host` the path, so the password would come out untouched. Parse those under a placeholder scheme.
  const schemeless = !hasScheme(raw);
  let u: URL;
  try {
    u = new URL(schemeless ? `x-redact://${raw}` : raw);
  } catch {
    return "(unparseable url)";
  }
  if (u.password) u.password = "***";
  // A user without a password is a token (`nats://s3cr3t@host`, `https://ghp_x@github.com`): hide it all.
  else if (u.username) u.username = "***";
  for (const key of [...u.searchParams.keys()]) if (SECRET_PARAM.test(key)) u.searchParams.set(key, "***");
  u.hash = "";
  const out = u.toString();
  return schemeless ? out.slice("x-redact://".length) : out;
}

/** Redaction of secret-looking values in free text (logs, prompts, tool output): one implementation for every service. */
const SECRET_NAME = "[A-Za-z0-9_.-]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?)[A-Za-z0-9_.-]*";

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

import { describe, expect, it } from "vitest";
import { redactUrl } from "@steward/platform/redact";
import { redactUrl as redactUrlFromConfig } from "@steward/platform/config";

// Every credential below contains "s3cr3t" (or is "12"/"34" for the comma case), so one assertion covers leaks.
const cases: [name: string, input: string, expected: string][] = [
  ["plain NATS URL", "nats://127.0.0.1:4222", "nats://127.0.0.1:4222"],
  ["docker-compose's three servers", "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222", "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222"],
  ["spaces after the commas", "nats://a:4222, nats://b:4222", "nats://a:4222,nats://b:4222"],
  ["user:pass@ on each server", "nats://steward:s3cr3t@a:4222,nats://steward:s3cr3t@b:4222", "nats://steward:***@a:4222,nats://steward:***@b:4222"],
  ["token@ (a user without password is a token)", "nats://s3cr3t-token@nats-1:4222", "nats://***@nats-1:4222"],
  ["token@ on one of several", "nats://a:4222,nats://s3cr3t@b:4222", "nats://a:4222,nats://***@b:4222"],
  ["schemeless host:port", "127.0.0.1:4222", "127.0.0.1:4222"],
  ["schemeless user:pass@host:port", "u:s3cr3t@127.0.0.1:4222", "u:***@127.0.0.1:4222"],
  ["IPv6 host", "nats://[::1]:4222", "nats://[::1]:4222"],
  ["IPv6 host with credentials", "nats://u:s3cr3t@[fe80::1]:4222,tls://[::1]:4443", "nats://u:***@[fe80::1]:4222,tls://[::1]:4443"],
  ["postgres URL", "postgres://u:hunter2s3cr3t@db:5432/x", "postgres://u:***@db:5432/x"],
  ["postgres password in the query", "postgres://db:5432/x?sslmode=require&password=s3cr3t", "postgres://db:5432/x?sslmode=require&password=***"],
  ["postgres multi-host", "postgres://u:s3cr3t@h1:5432,h2:5433/app", "postgres://u:***@h1:5432,h2:5433/app"],
  ["percent-encoded password", "nats://u:s3cr3t%40x@a:4222", "nats://u:***@a:4222"],
  ["a fragment is dropped", "https://example.test/x#access_token=s3cr3t", "https://example.test/x"],
  ["a comma inside the password", "nats://u:12,34@h:4222", "nats://u:***@h:4222"],
  ["a raw / in the password (unencoded base64)", "nats://u:12s3cr3t/34s3cr3t@h:4222", "nats://u:***@h:4222"],
  ["a raw ? and # in the password", "postgres://u:a?s3cr3t#b@db:5432/x", "postgres://u:***@db:5432/x"],
  ["an @ in the password", "postgres://u:p@s3cr3t@db:5432/x", "postgres://u:***@db:5432/x"],
  ["a raw / in a token", "nats://s3cr3t/x@h:4222", "nats://***@h:4222"],
  ["schemeless with a raw / in the password", "u:s3cr3t/x@127.0.0.1:4222", "u:***@127.0.0.1:4222"],
  ["garbage", "not a url at all", "(unparseable url)"],
  ["garbage holding a credential", "nats://u:s3cr3t@[::1:4222", "(unparseable url)"],
  ["one bad server among good ones", "nats://a:4222,nats://u:s3cr3t@b:port,nats://c:4222", "nats://a:4222,(unparseable url),nats://c:4222"],
  ["empty", "", "(empty url)"],
  ["only commas", " , ,", "(empty url)"],
];

describe("redactUrl", () => {
  it.each(cases)("%s", (_name, input, expected) => {
    const out = redactUrl(input);
    expect(out).toBe(expected);
    expect(out).not.toContain("s3cr3t");
  });

  it("never says 'unparseable' for the NATS_URL docker-compose.yml sets", () => {
    expect(redactUrl("nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222")).not.toContain("unparseable");
  });

  it("is the same function the services import from config", () => {
    expect(redactUrlFromConfig).toBe(redactUrl);
  });
});

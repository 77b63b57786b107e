import { describe, expect, it } from "vitest";
import { canonicalJson, checkNodeCommand, signNodeCommand, type NodeCommandBody, type SignedNodeCommand } from "@steward/contracts/node-command";
import { generateSigningKey, newCommandKeyPair, parseSigningKey, parseVerifyKey, parseVerifyKeys, PRIVATE_PREFIX, PUBLIC_PREFIX } from "@steward/contracts/command-keys";

const executor = newCommandKeyPair();
const attacker = newCommandKeyPair();
const key = executor.signing;
const keys = [key.publicKey];
const now = new Date("2026-01-01T00:00:00Z");
const startedAt = new Date("2025-12-31T23:59:00Z");
const body: NodeCommandBody = {
  id: "cmd-00000001",
  node: "web1",
  op: "restart",
  service: "api",
  action_id: null,
  issued_at: "2026-01-01T00:00:00.000Z",
  expires_at: "2026-01-01T00:00:30.000Z",
};

describe("node command signing", () => {
  it("canonical JSON sorts keys at every depth", () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { y: 1, x: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[2,{"x":2,"y":1}]},"b":1}');
  });

  const seen = (id: string) => id === "cmd-seen0001";
  const at = (issued: string, expires: string) => ({ ...body, issued_at: issued, expires_at: expires });
  const table: { name: string; cmd: SignedNodeCommand; want: string }[] = [
    { name: "valid", cmd: signNodeCommand(body, key), want: "ok" },
    { name: "signed with another Ed25519 key", cmd: signNodeCommand(body, attacker.signing), want: "bad_signature" },
    { name: "tampered body", cmd: { ...signNodeCommand(body, key), body: { ...body, op: "stop" } }, want: "bad_signature" },
    { name: "signature of another command", cmd: { body, sig: signNodeCommand({ ...body, id: "cmd-00000002" }, key).sig }, want: "bad_signature" },
    { name: "misaddressed", cmd: signNodeCommand({ ...body, node: "web2" }, key), want: "wrong_node" },
    { name: "expired", cmd: signNodeCommand(at("2025-12-31T23:59:00.000Z", "2025-12-31T23:59:59.000Z"), key), want: "expired" },
    { name: "issued in the future", cmd: signNodeCommand(at("2026-01-01T01:00:00.000Z", "2026-01-01T01:01:00.000Z"), key), want: "expired" },
    { name: "issued in the future within the skew allowance", cmd: signNodeCommand(at("2026-01-01T00:00:20.000Z", "2026-01-01T00:01:00.000Z"), key), want: "ok" },
    { name: "lifetime beyond the bound (5 min)", cmd: signNodeCommand(at("2026-01-01T00:00:00.000Z", "2026-01-01T00:05:00.001Z"), key), want: "lifetime_too_long" },
    { name: "lifetime at the bound", cmd: signNodeCommand(at("2025-12-31T23:59:59.000Z", "2026-01-01T00:04:59.000Z"), key), want: "ok" },
    { name: "issued before the agent started", cmd: signNodeCommand(at("2025-12-31T23:58:00.000Z", "2026-01-01T00:01:00.000Z"), key), want: "issued_before_start" },
    { name: "issued just before start, within the skew allowance", cmd: signNodeCommand(at("2025-12-31T23:58:40.000Z", "2026-01-01T00:01:00.000Z"), key), want: "ok" },
    { name: "replayed", cmd: signNodeCommand({ ...body, id: "cmd-seen0001" }, key), want: "replayed" },
  ];
  it.each(table)("$name → $want", ({ cmd, want }) => {
    const r = checkNodeCommand(cmd, { node: "web1", keys, now, seen, bounds: { startedAt, skewMs: 30_000, maxLifetimeMs: 300_000 } });
    expect(r.ok ? "ok" : r.code).toBe(want);
  });

  it("accepts any of the trusted keys (a rotation), and names the trusted key ids when none signed", () => {
    const both = [attacker.signing.publicKey, key.publicKey];
    expect(checkNodeCommand(signNodeCommand(body, key), { node: "web1", keys: both, now, seen: () => false })).toEqual({ ok: true });
    const r = checkNodeCommand(signNodeCommand(body, newCommandKeyPair().signing), { node: "web1", keys, now, seen: () => false });
    expect(r).toMatchObject({ ok: false, code: "bad_signature" });
    expect(!r.ok && r.message).toContain(key.publicKey.id);
  });
});

describe("command keys", () => {
  const pair = generateSigningKey();

  it("a generated pair is one line each, prefixed, and the private one yields the public one", () => {
    expect(pair.privateKey).toMatch(new RegExp(`^${PRIVATE_PREFIX}[A-Za-z0-9_-]{43}$`));
    expect(pair.publicKey).toMatch(new RegExp(`^${PUBLIC_PREFIX}[A-Za-z0-9_-]{43}$`));
    const parsed = parseSigningKey(pair.privateKey);
    expect(parsed.ok && parsed.key.publicKey.text).toBe(pair.publicKey);
    expect(parsed.ok && parsed.key.publicKey.id).toBe(pair.id);
  });

  it.each([
    ["empty", ""],
    ["no prefix", pair.privateKey.slice(PRIVATE_PREFIX.length)],
    ["truncated", pair.privateKey.slice(0, -1)],
    ["the public key", pair.publicKey],
    ["one repeated byte", `${PRIVATE_PREFIX}${"A".repeat(43)}`],
    ["PEM garbage", "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"],
  ])("refuses a private key that is %s, without echoing it", (_what, text) => {
    const r = parseSigningKey(text);
    expect(r.ok).toBe(false);
    if (!r.ok && text.length > 8) expect(r.message).not.toContain(text.slice(-20));
  });

  it("refuses a private key where a node expects the public one", () => {
    const r = parseVerifyKey(pair.privateKey);
    expect(r).toMatchObject({ ok: false });
    expect(!r.ok && r.message).toMatch(/PRIVATE key/);
    expect(!r.ok && r.message).not.toContain(pair.privateKey.slice(PRIVATE_PREFIX.length));
  });

  it("takes PEM keys as openssl writes them", async () => {
    const { generateKeyPairSync } = await import("node:crypto");
    const { privateKey, publicKey } = generateKeyPairSync("ed25519", { privateKeyEncoding: { format: "pem", type: "pkcs8" }, publicKeyEncoding: { format: "pem", type: "spki" } });
    const s = parseSigningKey(privateKey);
    const v = parseVerifyKey(publicKey);
    expect(s.ok && v.ok && s.key.publicKey.text === v.key.text).toBe(true);
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024, privateKeyEncoding: { format: "pem", type: "pkcs8" }, publicKeyEncoding: { format: "pem", type: "spki" } });
    expect(parseSigningKey(rsa.privateKey)).toMatchObject({ ok: false, message: expect.stringMatching(/rsa key/) });
  });

  it("takes up to 4 comma-separated public keys", () => {
    const more = [1, 2, 3, 4, 5].map(() => generateSigningKey().publicKey);
    expect(parseVerifyKeys(more.slice(0, 2).join(", "))).toMatchObject({ ok: true, key: [{}, {}] });
    expect(parseVerifyKeys(more.join(","))).toMatchObject({ ok: false });
    expect(parseVerifyKeys(` ${more[0]}, ${pair.privateKey}`)).toMatchObject({ ok: false, message: expect.stringMatching(/^key 2: .*PRIVATE/) });
    expect(parseVerifyKeys(" , ")).toMatchObject({ ok: false });
  });
});

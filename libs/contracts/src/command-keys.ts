import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, hkdfSync, sign, verify, type KeyObject } from "node:crypto";

/**
 * The executor's Ed25519 command key. The executor alone holds the private half and signs every node command with
 * it; node-agents hold only the public half, so a compromised node can verify commands but never make one.
 *
 * Text form (one line, fits an env file): `ed25519-private:<base64url of the 32-byte seed>` and
 * `ed25519-public:<base64url of the 32-byte public key>`. The prefixes keep the two from being swapped by mistake
 * (a private key pasted where a node expects the public one is refused, so it never lands on a node). A PEM key
 * (`openssl genpkey -algorithm ed25519`, and its `openssl pkey -pubout`) is accepted too.
 */
export const PRIVATE_PREFIX = "ed25519-private:";
export const PUBLIC_PREFIX = "ed25519-public:";

// DER prefixes of an Ed25519 key in PKCS#8 (private) and SPKI (public) form; the raw 32 bytes follow.
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

/** A public key node-agents verify commands with. `id` names it in logs and refusals (a hash: public anyway). */
export interface CommandVerifyKey {
  readonly key: KeyObject;
  /** The key in its text form (`ed25519-public:...`). */
  readonly text: string;
  readonly id: string;
}

/** The executor's private key. Never logged: only its public half and id are. */
export interface CommandSigningKey {
  readonly privateKey: KeyObject;
  readonly publicKey: CommandVerifyKey;
}

export type KeyParse<T> = { ok: true; key: T } | { ok: false; message: string };

const B64URL_32 = /^[A-Za-z0-9_-]{43}$/;

function rawPublic(key: KeyObject): Buffer {
  return key.export({ format: "der", type: "spki" }).subarray(SPKI_PREFIX.length);
}

function rawSeed(key: KeyObject): Buffer {
  return key.export({ format: "der", type: "pkcs8" }).subarray(PKCS8_PREFIX.length);
}

function verifyKeyOf(key: KeyObject): CommandVerifyKey {
  const raw = rawPublic(key);
  return { key, text: `${PUBLIC_PREFIX}${raw.toString("base64url")}`, id: createHash("sha256").update(raw).digest("base64url").slice(0, 12) };
}

/** Parses the executor's private key; the message never holds the value. */
export function parseSigningKey(text: string): KeyParse<CommandSigningKey> {
  const t = text.trim();
  let privateKey: KeyObject;
  try {
    if (t.startsWith("-----BEGIN")) privateKey = createPrivateKey(t.replace(/\\n/g, "\n"));
    else if (t.startsWith(PUBLIC_PREFIX)) return { ok: false, message: "holds a public key; the executor signs with the private key (ed25519-private:...)" };
    else if (!t.startsWith(PRIVATE_PREFIX)) return { ok: false, message: `must be an Ed25519 private key: '${PRIVATE_PREFIX}' and 43 base64url characters, or PEM (steward keys signing makes one)` };
    else {
      const b64 = t.slice(PRIVATE_PREFIX.length);
      if (!B64URL_32.test(b64)) return { ok: false, message: `must be '${PRIVATE_PREFIX}' followed by 43 base64url characters (a 32-byte seed)` };
      privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, Buffer.from(b64, "base64url")]), format: "der", type: "pkcs8" });
    }
  } catch {
    return { ok: false, message: "is not a readable Ed25519 private key" };
  }
  if (privateKey.asymmetricKeyType !== "ed25519") return { ok: false, message: `is a ${privateKey.asymmetricKeyType ?? "unknown"} key; an Ed25519 key is required` };
  const seed = rawSeed(privateKey);
  // A seed of one repeated byte is a placeholder someone typed, not a generated key.
  if (seed.every((b) => b === seed[0])) return { ok: false, message: "is a placeholder (one repeated byte); generate a key with steward keys signing" };
  return { ok: true, key: { privateKey, publicKey: verifyKeyOf(createPublicKey(privateKey)) } };
}

/** Parses one public key node-agents verify with; the message never holds the value. */
export function parseVerifyKey(text: string): KeyParse<CommandVerifyKey> {
  const t = text.trim();
  if (t.startsWith(PRIVATE_PREFIX) || /-----BEGIN (ENCRYPTED )?PRIVATE KEY/.test(t)) {
    return { ok: false, message: "holds a PRIVATE key: node-agents take only the public key (ed25519-public:...); treat this private key as leaked and make a new pair" };
  }
  let key: KeyObject;
  try {
    if (t.startsWith("-----BEGIN")) key = createPublicKey(t.replace(/\\n/g, "\n"));
    else if (!t.startsWith(PUBLIC_PREFIX)) return { ok: false, message: `must be an Ed25519 public key: '${PUBLIC_PREFIX}' and 43 base64url characters, or PEM` };
    else {
      const b64 = t.slice(PUBLIC_PREFIX.length);
      if (!B64URL_32.test(b64)) return { ok: false, message: `must be '${PUBLIC_PREFIX}' followed by 43 base64url characters (32 bytes)` };
      key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, Buffer.from(b64, "base64url")]), format: "der", type: "spki" });
    }
  } catch {
    return { ok: false, message: "is not a readable Ed25519 public key" };
  }
  if (key.asymmetricKeyType !== "ed25519") return { ok: false, message: `is a ${key.asymmetricKeyType ?? "unknown"} key; an Ed25519 key is required` };
  return { ok: true, key: verifyKeyOf(key) };
}

/**
 * One or more public keys, comma-separated: during a rotation agents trust the old and the new key until the
 * executor signs with the new one. At most 4.
 */
export function parseVerifyKeys(text: string): KeyParse<CommandVerifyKey[]> {
  const parts = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (parts.length === 0) return { ok: false, message: "is empty: set the executor's public command key (ed25519-public:...)" };
  if (parts.length > 4) return { ok: false, message: "holds more than 4 keys" };
  const keys: CommandVerifyKey[] = [];
  for (const [i, p] of parts.entries()) {
    const r = parseVerifyKey(p);
    if (!r.ok) return { ok: false, message: parts.length > 1 ? `key ${i + 1}: ${r.message}` : r.message };
    keys.push(r.key);
  }
  return { ok: true, key: keys };
}

/** A fresh key pair in text form. */
export function generateSigningKey(): { privateKey: string; publicKey: string; id: string } {
  const { privateKey } = generateKeyPairSync("ed25519");
  const pub = verifyKeyOf(createPublicKey(privateKey));
  return { privateKey: `${PRIVATE_PREFIX}${rawSeed(privateKey).toString("base64url")}`, publicKey: pub.text, id: pub.id };
}

/** base64url Ed25519 signature of `data` (UTF-8). */
export function signText(key: CommandSigningKey, data: string): string {
  return sign(null, Buffer.from(data, "utf8"), key.privateKey).toString("base64url");
}

/** The key among `keys` that signed `data`, if any. */
export function verifyText(keys: readonly CommandVerifyKey[], data: string, sig: string): CommandVerifyKey | undefined {
  const s = Buffer.from(sig, "base64url");
  if (s.length !== 64) return undefined;
  const bytes = Buffer.from(data, "utf8");
  return keys.find((k) => verify(null, bytes, k.key, s));
}

/**
 * A 32-byte key for another purpose (e.g. approval tokens), derived from the private key with HKDF and the purpose's
 * own label: nobody without the executor's key (no node) can derive it, and it never equals the signing key.
 */
export function deriveFromSigningKey(key: CommandSigningKey, label: string): Buffer {
  return Buffer.from(hkdfSync("sha256", rawSeed(key.privateKey), Buffer.alloc(0), Buffer.from(label, "utf8"), 32));
}

/** A fresh pair, parsed and in text form (`steward up`, tests). */
export function newCommandKeyPair(): { signing: CommandSigningKey; privateKey: string; publicKey: string } {
  const texts = generateSigningKey();
  const parsed = parseSigningKey(texts.privateKey);
  if (!parsed.ok) throw new Error(`a generated command key did not parse: ${parsed.message}`);
  return { signing: parsed.key, privateKey: texts.privateKey, publicKey: texts.publicKey };
}

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { RESERVED_CREDENTIAL_NAMES, type CredentialRole } from "@steward/contracts/executor-api";
import type { Sql } from "./db.js";

/** The authenticated caller: its name is the audit actor of everything it does. */
export interface Credential<R extends string = CredentialRole> {
  name: string;
  role: R;
}

/** The token of an `Authorization: Bearer …` header; "" when there is none (which resolves to no credential). */
export function bearerToken(header: string | undefined): string {
  return /^Bearer\s+(.+)$/i.exec(header ?? "")?.[1]?.trim() ?? "";
}

/**
 * A credential from a service's own settings (the executor's API_TOKEN is `admin`, ALERTER_TOKEN `alerter`; the
 * planner's API_TOKEN `admin` and its component tokens): not in the table, not revocable there.
 */
export interface SettingCredential<R extends string = CredentialRole> extends Credential<R> {
  token: string;
  setting: string;
}

export interface CredentialInfo<R extends string = CredentialRole> extends Credential<R | CredentialRole> {
  source: "setting" | "database";
  created_at: string | null;
  created_by: string | null;
  revoked_at: string | null;
}

export type CreateResult = { ok: true; credential: CredentialInfo; token: string } | { ok: false; code: "exists" | "reserved"; field: "name"; message: string };
export type RevokeResult = { ok: true } | { ok: false; code: "not_found" | "reserved"; message: string };

/**
 * The named API credentials of the executor and the planner (the only code that touches `api_credentials`; the
 * executor creates and revokes them, both resolve them). A token is random, shown once by `create`, and stored as its
 * SHA-256; `resolve` finds who holds a token (the service's setting credentials first, each compared in constant
 * time; then the table, revoked ones excluded) on every request: no cache, so a revocation holds everywhere at once.
 */
export interface CredentialsRepository<R extends string = CredentialRole> {
  resolve(token: string): Promise<Credential<R | CredentialRole> | undefined>;
  create(name: string, role: CredentialRole, createdBy: string): Promise<CreateResult>;
  list(): Promise<CredentialInfo<R>[]>;
  revoke(name: string, revokedBy: string): Promise<RevokeResult>;
}

export type NameDecision = { ok: true } | { ok: false; code: "reserved"; field: "name"; message: string };

/**
 * Pure: whether a new credential may take this name. A setting's credential keeps its name (its token lives in
 * that setting); a component's name, or one Steward acts under (`RESERVED_CREDENTIAL_NAMES`), is never a person's.
 */
export function decideCredentialName(name: string, fromSettings: readonly Pick<SettingCredential<string>, "name" | "setting">[]): NameDecision {
  const setting = fromSettings.find((c) => c.name === name);
  if (setting) return { ok: false, code: "reserved", field: "name", message: `name '${name}' is the credential of the setting ${setting.setting}; choose another name` };
  if (RESERVED_CREDENTIAL_NAMES.includes(name)) {
    return { ok: false, code: "reserved", field: "name", message: `name '${name}' is reserved: it names a Steward component or Steward itself, and the audit log would show that as the actor; choose another name (reserved: ${RESERVED_CREDENTIAL_NAMES.join(", ")})` };
  }
  return { ok: true };
}

const TOKEN_PREFIX = "stw_";
const hash = (token: string): string => createHash("sha256").update(token).digest("hex");
const digest = (s: string): Buffer => createHash("sha256").update(s).digest();

/** A new token: 256 random bits, prefixed so a leaked one is recognisable (and greppable by secret scanners). */
export function newToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString("base64url");
}

export function createCredentialsRepository<R extends string = CredentialRole>(sql: Sql, fromSettings: readonly SettingCredential<R>[]): CredentialsRepository<R> {
  const reserved = new Map(fromSettings.map((c) => [c.name, c]));
  const settingInfo = (c: SettingCredential<R>): CredentialInfo<R> => ({ name: c.name, role: c.role, source: "setting", created_at: null, created_by: `setting ${c.setting}`, revoked_at: null });

  return {
    async resolve(token) {
      if (token === "") return undefined;
      const given = digest(token);
      // Every setting credential is compared, in constant time, whatever matched before.
      let found: SettingCredential<R> | undefined;
      for (const c of fromSettings) if (timingSafeEqual(given, digest(c.token))) found = c;
      if (found) return { name: found.name, role: found.role };
      const [row] = await sql<{ name: string; role: CredentialRole }[]>`SELECT name, role FROM api_credentials WHERE token_hash = ${hash(token)} AND revoked_at IS NULL`;
      return row ? { name: row.name, role: row.role } : undefined;
    },

    async create(name, role, createdBy) {
      const named = decideCredentialName(name, fromSettings);
      if (!named.ok) return named;
      const token = newToken();
      // A revoked name may be given again (the old token stays dead: its hash is replaced).
      const [row] = await sql<{ created_at: Date }[]>`
        INSERT INTO api_credentials (name, role, token_hash, created_by) VALUES (${name}, ${role}, ${hash(token)}, ${createdBy})
        ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role, token_hash = EXCLUDED.token_hash, created_by = EXCLUDED.created_by,
          created_at = now(), revoked_at = NULL, revoked_by = NULL
        WHERE api_credentials.revoked_at IS NOT NULL
        RETURNING created_at`;
      if (!row) return { ok: false, code: "exists", field: "name", message: `a credential named '${name}' exists; revoke it first` };
      return { ok: true, token, credential: { name, role, source: "database", created_at: row.created_at.toISOString(), created_by: createdBy, revoked_at: null } };
    },

    async list() {
      const rows = await sql<{ name: string; role: CredentialRole; created_at: Date; created_by: string; revoked_at: Date | null }[]>`
        SELECT name, role, created_at, created_by, revoked_at FROM api_credentials ORDER BY name`;
      return [
        ...fromSettings.map(settingInfo),
        ...rows.map((r) => ({ name: r.name, role: r.role, source: "database" as const, created_at: r.created_at.toISOString(), created_by: r.created_by, revoked_at: r.revoked_at?.toISOString() ?? null })),
      ];
    },

    async revoke(name, revokedBy) {
      if (reserved.has(name)) return { ok: false, code: "reserved", message: `'${name}' comes from the setting ${reserved.get(name)?.setting ?? "?"}: change that setting and restart the executor to replace it` };
      const rows = await sql`UPDATE api_credentials SET revoked_at = now(), revoked_by = ${revokedBy} WHERE name = ${name} AND revoked_at IS NULL RETURNING name`;
      return rows.length === 1 ? { ok: true } : { ok: false, code: "not_found", message: `no live credential named '${name}'` };
    },
  };
}

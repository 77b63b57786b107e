import { createHash } from "node:crypto";
import { canonicalJson, hmacHex } from "@steward/contracts/node-command";
import type { ComposeServices, StackRevision } from "./compose-model.js";
import { startOrder } from "./plan.js";

/** Hash over the normalized stack; stable under key order in files, maps and the spec (canonical JSON). */
export function configHash(r: Omit<StackRevision, "hash" | "content_hash" | "compose_hashes">): string {
  const env = Object.fromEntries(Object.entries(r.env).map(([k, v]) => [k, typeof v === "string" ? v : { secret: v.secret }]));
  const doc = { v: 1, project: r.project, services: r.services, env, env_file: r.env_file === null ? null : r.env_file_digests };
  return `sha256:${createHash("sha256").update(canonicalJson(doc)).digest("hex")}`;
}

export function buildRevision(input: Omit<StackRevision, "hash" | "content_hash" | "compose_hashes">): StackRevision {
  return { ...input, hash: configHash(input) };
}

/** The content hash of a revision: what Steward's label on its containers says. */
export const contentHash = (r: Pick<StackRevision, "hash" | "content_hash">): string => r.content_hash ?? r.hash;

/**
 * Pure: a revision's identity from its content hash and Compose's resolved config hash of each service. Keyed with the
 * fleet key: Compose hashes the resolved environment (secret values included), so the published digest must not be
 * one anybody could test guesses against.
 */
export function resolvedHash(key: string, content: string, compose: Record<string, string>): string {
  return `compose:${hmacHex(key, canonicalJson({ v: 1, content, compose }))}`;
}

/** Pure: the revision `base` (content only) with Compose's resolved hashes folded into its identity. */
export function withComposeHashes(key: string, base: StackRevision, compose: Record<string, string>): StackRevision {
  const content = contentHash(base);
  return { ...base, content_hash: content, compose_hashes: compose, hash: resolvedHash(key, content, compose) };
}

/** Pure: why the Engine-API applier cannot apply these services (what only the real Compose does), if it cannot. */
export function engineUnsupported(services: ComposeServices): string | undefined {
  for (const [name, s] of Object.entries(services)) {
    if (!s.image) return `services.${name}.build: building images needs Compose on the node (docker compose or docker-compose); set image`;
    for (const k of ["ports", "volumes"] as const) if (s.other[k] !== undefined) return `services.${name}.${k}: the long syntax needs Compose on the node (docker compose or docker-compose); use the short syntax`;
  }
  return undefined;
}

/** Services of a stack in the order they are deployed: dependencies first, then by name. */
export function deployOrder(services: ComposeServices): string[] {
  return startOrder(services);
}

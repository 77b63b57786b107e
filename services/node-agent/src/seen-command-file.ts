import { mkdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { writeFileAtomic } from "@steward/platform/atomic-write";
import { SeenCommands } from "./commands.js";

/** Where the agent remembers accepted command ids: `STATE_DIR/commands/seen.json`. */
export const seenFilePath = (stateDir: string): string => join(stateDir, "commands", "seen.json");

export type SeenFileParse = { ok: true; entries: [string, number][] } | { ok: false; reason: string };

/** Pure: the still-live ids of a seen-file's text (expired ones dropped), or why it cannot be read. */
export function parseSeenFile(text: string, nowMs: number): SeenFileParse {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { ok: false, reason: "not JSON" };
  }
  const ids = (doc as { version?: unknown; ids?: unknown } | null)?.ids;
  if ((doc as { version?: unknown } | null)?.version !== 1 || !ids || typeof ids !== "object" || Array.isArray(ids)) return { ok: false, reason: "not a version 1 seen-commands file" };
  const entries: [string, number][] = [];
  for (const [id, exp] of Object.entries(ids)) {
    if (typeof exp !== "number" || !Number.isFinite(exp)) return { ok: false, reason: `entry ${JSON.stringify(id.slice(0, 40))} has no expiry` };
    if (exp > nowMs) entries.push([id, exp]);
  }
  return { ok: true, entries };
}

export const formatSeenFile = (entries: [string, number][]): string => JSON.stringify({ version: 1, ids: Object.fromEntries(entries) });

export type SeenLoad = { state: "fresh" } | { state: "loaded"; ids: number } | { state: "unreadable"; reason: string };

/** Command ids this agent accepted, kept in memory and in STATE_DIR so a restart does not forget them. */
export interface SeenCommandLog {
  /** Reads the file once, at start. */
  load(nowMs: number): Promise<SeenLoad>;
  has(id: string, nowMs: number): boolean;
  /**
   * Remembers an id (at once, in memory) and resolves once the file holds it. Rejects when full of live ids or when
   * the file cannot be written: the caller then refuses the command, since it could be replayed after a restart.
   */
  remember(id: string, expiresAtMs: number, nowMs: number): Promise<void>;
}

export function createSeenCommandLog(deps: { stateDir: string; max?: number }): SeenCommandLog {
  const path = seenFilePath(deps.stateDir);
  const seen = new SeenCommands(deps.max);
  // Writes run one after another; each writes the live set as it is then, so it holds every id added before it.
  let writing: Promise<void> = Promise.resolve();

  return {
    async load(nowMs) {
      let text: string;
      try {
        text = await readFile(path, "utf8");
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return { state: "fresh" };
        return { state: "unreadable", reason: (err as NodeJS.ErrnoException).code ?? "read failed" };
      }
      const parsed = parseSeenFile(text, nowMs);
      if (!parsed.ok) return { state: "unreadable", reason: parsed.reason };
      let ids = 0;
      for (const [id, exp] of parsed.entries) if (seen.add(id, exp, nowMs)) ids++;
      return { state: "loaded", ids };
    },

    has: (id, nowMs) => seen.has(id, nowMs),

    remember(id, expiresAtMs, nowMs) {
      if (!seen.add(id, expiresAtMs, nowMs)) return Promise.reject(new Error(`${seen.max} live command ids remembered already`));
      const write = writing.then(async () => {
        await mkdir(dirname(path), { recursive: true });
        await writeFileAtomic(path, formatSeenFile(seen.entries(nowMs)));
      });
      writing = write.catch(() => undefined);
      return write;
    },
  };
}

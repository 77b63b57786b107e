import { createHash } from "node:crypto";
import type { WorldView } from "../world.js";
import type { Logger } from "@steward/platform/logger";
import type { ActionsRepository } from "@steward/actions/repository";

/**
 * Tells open consoles that something they show has changed: the world snapshot or drift report (KV revision)
 * or any action (counts by state plus the newest actions' states). One shared poll, running only while at
 * least one console listens, so an executor nobody watches pays nothing.
 */
export function createChangeFeed(deps: { world: Pick<WorldView, "revision">; store: Pick<ActionsRepository, "list" | "countByState">; logger: Logger; pollMs: number }) {
  const listeners = new Set<() => void>();
  let timer: NodeJS.Timeout | undefined;
  let last: string | undefined;
  let busy = false;
  let firstTick: Promise<void> = Promise.resolve();

  async function fingerprint(): Promise<string> {
    const [recent, counts] = await Promise.all([deps.store.list({ limit: 50 }), deps.store.countByState()]);
    const h = createHash("sha256");
    h.update(`${deps.world.revision()}|${JSON.stringify(counts)}|`);
    for (const a of recent) h.update(`${a.id}:${a.state}:${a.updated_at};`);
    return h.digest("base64url");
  }

  async function tick(): Promise<void> {
    if (busy) return;
    busy = true;
    try {
      const fp = await fingerprint();
      if (last !== undefined && fp !== last) for (const l of [...listeners]) l();
      last = fp;
    } catch (err) {
      deps.logger.warn({ err: (err as Error).message }, "console change feed could not read state; retrying");
    } finally {
      busy = false;
    }
  }

  return {
    subscribe(fn: () => void): () => void {
      listeners.add(fn);
      if (!timer) {
        last = undefined;
        firstTick = tick();
        timer = setInterval(() => void tick(), deps.pollMs);
        timer.unref();
      }
      return () => {
        listeners.delete(fn);
        if (listeners.size === 0 && timer) {
          clearInterval(timer);
          timer = undefined;
        }
      };
    },
    /** Settles once the feed has its first fingerprint: a change after that reaches every subscriber. */
    primed(): Promise<void> {
      return firstTick;
    },
    get listeners(): number {
      return listeners.size;
    },
  };
}

export type ChangeFeed = ReturnType<typeof createChangeFeed>;

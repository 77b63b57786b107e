import type { Logger } from "@steward/platform/logger";
import { sleep } from "@steward/platform/sleep";
import { LABEL_PROJECT } from "./compose-model.js";
import type { StackObserver } from "./compose-observe.js";
import type { Stack, StackSet } from "./compose-stack.js";
import type { DockerClient, EventsEnd } from "./docker/client.js";
import type { EngineEvent } from "./docker/types.js";

/**
 * Follows the engine's event stream so a container's death, pause or health change is seen at once, not at the
 * next probe; a stream that ends (the daemon stopping, the socket gone) makes every stack `unknown` at once.
 */
export interface StackEvents {
  /** Follows events while the node declares stacks; call again after the spec changed. Never throws. */
  ensure(): void;
  stop(): Promise<void>;
}

export interface StackEventsDeps {
  docker: Pick<DockerClient, "followEvents">;
  stacks: StackSet;
  observer: Pick<StackObserver, "probeSoon" | "probeAll" | "engineLost">;
  logger: Logger;
  /** Wait before following again after the stream ended (ms), doubled up to `retryMaxMs`. */
  retryMinMs?: number;
  retryMaxMs?: number;
}

/** Only containers of compose projects; which project is matched here (the engine ANDs label filters). */
export const EVENT_FILTERS: Record<string, string[]> = { type: ["container"], label: [LABEL_PROJECT] };

/** Pure: the declared stacks an engine event is about. Healthcheck runs (`exec_*`) change nothing by themselves. */
export function stacksOfEvent(e: EngineEvent, stacks: readonly Stack[]): Stack[] {
  if (e.Type !== "container" || e.Action.startsWith("exec_")) return [];
  const project = e.Actor.Attributes?.[LABEL_PROJECT];
  return project === undefined ? [] : stacks.filter((s) => s.project === project);
}

/** Pure: what an ended stream means for the stacks: `unknown` unless the caller stopped it or the engine has no events. */
export function lostDetail(end: EventsEnd): string | undefined {
  if (end.reason === "aborted" || end.reason === "refused") return undefined;
  return `engine event stream: ${end.detail}`;
}

export function createStackEvents(deps: StackEventsDeps): StackEvents {
  const { logger } = deps;
  const min = deps.retryMinMs ?? 250;
  const max = deps.retryMaxMs ?? 5000;
  const abort = new AbortController();
  let loop: Promise<void> | undefined;

  async function follow(): Promise<void> {
    let backoff = min;
    while (!abort.signal.aborted && deps.stacks.all().length > 0) {
      const end = await deps.docker.followEvents(
        EVENT_FILTERS,
        {
          onConnected() {
            backoff = min;
            logger.info("following the engine's events");
            // Anything may have happened while not following: re-sync every stack from a full list.
            void deps.observer.probeAll();
          },
          onEvent(e) {
            for (const s of stacksOfEvent(e, deps.stacks.all())) void deps.observer.probeSoon(s);
          },
        },
        abort.signal,
      );
      if (end.reason === "aborted") return;
      const lost = lostDetail(end);
      if (lost) deps.observer.engineLost(lost);
      if (end.connected || end.reason !== "broken") logger.warn({ reason: end.reason, detail: end.detail }, "engine event stream ended");
      await sleep(end.reason === "refused" ? max : backoff, abort.signal);
      backoff = Math.min(max, backoff * 2);
    }
  }

  return {
    ensure() {
      if (loop || abort.signal.aborted || deps.stacks.all().length === 0) return;
      loop = follow()
        .catch((err: unknown) => logger.warn({ err: (err as Error).message }, "following engine events failed"))
        .finally(() => (loop = undefined));
    },
    async stop() {
      abort.abort();
      await loop;
    },
  };
}

import type { AlertSeverity, Finding } from "./rules.js";

/** One fingerprint's recent episodes (alert rows), from the store: what the flap detector looks at. */
export interface EpisodeHistory {
  fingerprint: string;
  /** Episodes (firings) that began inside the window. */
  starts: number;
  /** The newest change (a firing or a resolution) of this fingerprint, ms. */
  lastChange: number;
  /** What the newest episode said: the flapping alert speaks about the same thing. */
  latest: { rule: string; severity: AlertSeverity; title: string; labels: Record<string, string> };
}

export interface FlapSettings {
  /** Episodes within the window that make a fingerprint flapping. */
  count: number;
  windowMs: number;
}

export const FLAPPING_RULE = "flapping";
const PREFIX = "flapping:";

export const flappingFingerprint = (fp: string): string => `${PREFIX}${fp}`;
/** The fingerprint a flapping alert stands for; undefined for any other alert. */
export const flappedFingerprint = (fp: string): string | undefined => (fp.startsWith(PREFIX) ? fp.slice(PREFIX.length) : undefined);

const fmtWindow = (ms: number): string => (ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`);

/**
 * Pure: which fingerprints flap now. A fingerprint flaps once it began `count` episodes within the window; it stays
 * flapping until it has been stable (no firing, no resolution) for a whole window, so a crash loop is one alert that
 * says so, not a firing/resolved pair per crash. `flappingNow` are the flapping alerts already firing.
 */
export function flapFindings(history: readonly EpisodeHistory[], flappingNow: ReadonlySet<string>, now: number, s: FlapSettings): Finding[] {
  const out: Finding[] = [];
  for (const h of history) {
    if (flappedFingerprint(h.fingerprint) !== undefined || h.latest.rule === FLAPPING_RULE) continue;
    const fp = flappingFingerprint(h.fingerprint);
    const starting = h.starts >= s.count;
    const unsettled = flappingNow.has(fp) && now - h.lastChange < s.windowMs;
    if (!starting && !unsettled) continue;
    const what = h.latest.title;
    out.push({
      fingerprint: fp,
      rule: FLAPPING_RULE,
      severity: h.latest.severity,
      title: `Flapping: ${what}`,
      message: `${what} fired and resolved ${h.starts} times within ${fmtWindow(s.windowMs)}; its changes are held back until it has been stable for ${fmtWindow(s.windowMs)}.`,
      labels: { ...h.latest.labels, flapping: h.fingerprint },
      renotifyMs: undefined,
    });
  }
  return out;
}

/**
 * The standard OpenTelemetry variables, read without loading OpenTelemetry itself (so `steward up` can check them
 * before anything starts and commands that trace nothing stay light). tracing.ts applies what this decides.
 */
import { ConfigError } from "./config.js";

/** The standard OpenTelemetry variables Steward reads (the OTLP exporter also honours its own, e.g. OTEL_EXPORTER_OTLP_HEADERS). */
export const OTEL_SETTINGS = ["OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] as const;

/** One naming scheme for every Steward process: `steward-observer`, `steward-node-agent`, `steward-cli`, … */
export function otelServiceName(component: string): string {
  return `steward-${component}`;
}

export interface TracingSettings {
  /** The resource every span carries: `service.name`, `service.namespace` and whatever OTEL_RESOURCE_ATTRIBUTES adds. */
  resource: Record<string, string>;
  /** Where spans go (OTLP/HTTP); undefined: spans are made (and propagated) but not exported. */
  tracesUrl: string | undefined;
}

type Env = Record<string, string | undefined>;

/** The spec treats an empty variable as unset. */
const setting = (env: Env, name: string): string | undefined => (env[name]?.trim() ? env[name]!.trim() : undefined);

function httpUrl(name: string, value: string): URL {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new ConfigError("tracing", [{ setting: name, message: "is not a URL (want e.g. http://collector:4318)" }]);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new ConfigError("tracing", [{ setting: name, message: `must be an http(s) URL (OTLP/HTTP), not ${u.protocol}` }]);
  return u;
}

/**
 * OTEL_RESOURCE_ATTRIBUTES as the spec defines it (`key=value,key=value`, `,` and `=` percent-encoded). Parsed here,
 * not by the SDK's envDetector, because that one drops a malformed variable silently; this names the bad entry.
 */
function resourceAttributes(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  const entries = raw.split(",");
  for (const [i, entry] of entries.entries()) {
    if (!entry.trim()) continue;
    const kv = entry.split("=");
    // By position, not by content: a setting's value never goes into an error.
    const bad = (why: string) => new ConfigError("tracing", [{ setting: "OTEL_RESOURCE_ATTRIBUTES", message: `entry ${i + 1} of ${entries.length} ${why}` }]);
    if (kv.length !== 2) throw bad("is not key=value (percent-encode ',' and '=' inside keys and values)");
    try {
      const key = decodeURIComponent(kv[0]!.trim());
      if (!key) throw bad("has an empty key");
      out[key] = decodeURIComponent(kv[1]!.trim());
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw bad("has a broken percent-encoding");
    }
  }
  return out;
}

/**
 * What the standard variables say, for one Steward component. `service.name` is OTEL_SERVICE_NAME, else
 * OTEL_RESOURCE_ATTRIBUTES' `service.name`, else `steward-<component>`. Spans are exported to
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as given, else to OTEL_EXPORTER_OTLP_ENDPOINT + `/v1/traces`, else nowhere.
 * A malformed value throws a ConfigError naming the variable (never a silent fallback).
 */
export function tracingSettings(component: string, env: Env): TracingSettings {
  const attrs = setting(env, "OTEL_RESOURCE_ATTRIBUTES");
  const resource: Record<string, string> = { "service.namespace": "steward", ...(attrs ? resourceAttributes(attrs) : {}) };
  resource["service.name"] = setting(env, "OTEL_SERVICE_NAME") ?? resource["service.name"] ?? otelServiceName(component);
  const traces = setting(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  const base = setting(env, "OTEL_EXPORTER_OTLP_ENDPOINT");
  let tracesUrl: string | undefined;
  if (traces) tracesUrl = httpUrl("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces).href;
  else if (base) {
    const u = httpUrl("OTEL_EXPORTER_OTLP_ENDPOINT", base);
    u.pathname = `${u.pathname.replace(/\/+$/, "")}/v1/traces`;
    tracesUrl = u.href;
  }
  return { resource, tracesUrl };
}

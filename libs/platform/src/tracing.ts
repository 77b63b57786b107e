import { context, propagation, trace, type Context, type Span, type SpanOptions, SpanStatusCode, type Tracer } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, type SpanExporter, type SpanProcessor, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { tracingSettings, type TracingSettings } from "./otel-settings.js";

export { context, propagation, trace, SpanStatusCode, type Context, type Span, type Tracer };
export { OTEL_SETTINGS, otelServiceName, tracingSettings, type TracingSettings } from "./otel-settings.js";

export interface TracingOptions {
  /** The Steward component (`observer`, `node-agent`, `cli`, …): its default service.name is `steward-<component>`. */
  component: string;
  /** Where the OTEL_* variables are read from (process.env when not given). */
  env?: Record<string, string | undefined>;
  /** For tests: an in-memory exporter, exported synchronously. */
  exporter?: SpanExporter;
}

let provider: NodeTracerProvider | undefined;

/**
 * Installs the global tracer provider and the W3C propagator, configured by the standard OTEL_* variables. Call once,
 * from main.ts (or a test). Throws a ConfigError naming the variable when one is malformed.
 */
export function initTracing(opts: TracingOptions): { shutdown: () => Promise<void>; settings: TracingSettings } {
  const settings = tracingSettings(opts.component, opts.env ?? process.env);
  const processors: SpanProcessor[] = [];
  if (opts.exporter) processors.push(new SimpleSpanProcessor(opts.exporter));
  if (settings.tracesUrl) processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: settings.tracesUrl })));
  provider = new NodeTracerProvider({ resource: resourceFromAttributes(settings.resource), spanProcessors: processors });
  provider.register({ propagator: new W3CTraceContextPropagator() });
  const p = provider;
  return { shutdown: () => p.shutdown(), settings };
}

/** Makes sure propagation works even when no provider was installed (e.g. a library user). */
export function ensurePropagator(): void {
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
}

export function tracer(name = "steward"): Tracer {
  return trace.getTracer(name);
}

/** A carrier-agnostic inject: returns {traceparent, tracestate?} for the given (or active) context. */
export function currentTraceHeaders(ctx: Context = context.active()): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier;
}

export function traceparentOf(ctx: Context = context.active()): string | undefined {
  return currentTraceHeaders(ctx)["traceparent"];
}

export function contextFromTraceparent(traceparent: string | null | undefined, tracestate?: string | null): Context {
  if (!traceparent) return context.active();
  const carrier: Record<string, string> = { traceparent };
  if (tracestate) carrier["tracestate"] = tracestate;
  return propagation.extract(context.active(), carrier);
}

/** Runs `fn` in a span, records errors, always ends the span. */
export async function withSpan<T>(name: string, opts: SpanOptions & { parent?: Context }, fn: (span: Span) => Promise<T> | T): Promise<T> {
  const parent = opts.parent ?? context.active();
  return tracer().startActiveSpan(name, opts, parent, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  });
}

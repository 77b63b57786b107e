import { describe, expect, it } from "vitest";
import { ConfigError } from "@steward/platform/config";
import { otelServiceName, tracingSettings } from "@steward/platform/otel-settings";

describe("tracingSettings: the standard OTEL_* variables", () => {
  it.each([
    ["nothing set: steward-<component>, no export", "observer", {}, { "service.name": "steward-observer", "service.namespace": "steward" }, undefined],
    ["empty values count as unset", "executor", { OTEL_SERVICE_NAME: " ", OTEL_EXPORTER_OTLP_ENDPOINT: "", OTEL_RESOURCE_ATTRIBUTES: "" }, { "service.name": "steward-executor", "service.namespace": "steward" }, undefined],
    ["OTEL_SERVICE_NAME names it", "planner", { OTEL_SERVICE_NAME: "planner-eu" }, { "service.name": "planner-eu", "service.namespace": "steward" }, undefined],
    ["service.name in the attributes, without OTEL_SERVICE_NAME", "planner", { OTEL_RESOURCE_ATTRIBUTES: "service.name=p2" }, { "service.name": "p2", "service.namespace": "steward" }, undefined],
    ["OTEL_SERVICE_NAME over the attributes' service.name", "planner", { OTEL_SERVICE_NAME: "p1", OTEL_RESOURCE_ATTRIBUTES: "service.name=p2" }, { "service.name": "p1", "service.namespace": "steward" }, undefined],
    ["attributes are percent-decoded and trimmed; namespace can be changed", "cli", { OTEL_RESOURCE_ATTRIBUTES: " a=1 , b=x%3Dy%2Cz ,, service.namespace=lab" }, { "service.name": "steward-cli", "service.namespace": "lab", a: "1", b: "x=y,z" }, undefined],
    ["base endpoint gets /v1/traces", "node-agent", { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" }, { "service.name": "steward-node-agent", "service.namespace": "steward" }, "http://collector:4318/v1/traces"],
    ["base endpoint with a path and a trailing slash", "node-agent", { OTEL_EXPORTER_OTLP_ENDPOINT: "https://otel.example/ingest/" }, { "service.name": "steward-node-agent", "service.namespace": "steward" }, "https://otel.example/ingest/v1/traces"],
    ["the traces endpoint is used as given, over the base", "alerter", { OTEL_EXPORTER_OTLP_ENDPOINT: "http://a:4318", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://b:9999/t" }, { "service.name": "steward-alerter", "service.namespace": "steward" }, "http://b:9999/t"],
  ])("%s", (_what, component, env, resource, tracesUrl) => {
    expect(tracingSettings(component, env)).toEqual({ resource, tracesUrl });
  });

  it.each([
    [{ OTEL_RESOURCE_ATTRIBUTES: "a=1,b" }, "OTEL_RESOURCE_ATTRIBUTES", 'entry 2 of 2 is not key=value'],
    [{ OTEL_RESOURCE_ATTRIBUTES: "a=b=c" }, "OTEL_RESOURCE_ATTRIBUTES", 'entry 1 of 1 is not key=value'],
    [{ OTEL_RESOURCE_ATTRIBUTES: "=x" }, "OTEL_RESOURCE_ATTRIBUTES", 'entry 1 of 1 has an empty key'],
    [{ OTEL_RESOURCE_ATTRIBUTES: "a=%ZZ" }, "OTEL_RESOURCE_ATTRIBUTES", 'entry 1 of 1 has a broken percent-encoding'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "localhost:4318" }, "OTEL_EXPORTER_OTLP_ENDPOINT", "must be an http(s) URL (OTLP/HTTP), not localhost:"],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "grpc://c:4317" }, "OTEL_EXPORTER_OTLP_ENDPOINT", "must be an http(s) URL"],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "::" }, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "is not a URL"],
  ])("%j is refused naming %s", (env, setting, message) => {
    let err: unknown;
    try {
      tracingSettings("observer", env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual([{ setting, message: expect.stringContaining(message) as string }]);
    // The setting is named, its value never shown.
    for (const v of Object.values(env)) expect((err as ConfigError).message).not.toContain(v);
  });

  it("one naming scheme", () => {
    expect(otelServiceName("node-agent")).toBe("steward-node-agent");
  });
});

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Counter, createRegistry, serveMetrics } from "@steward/platform/metrics";

describe("serveMetrics", () => {
  let served: Awaited<ReturnType<typeof serveMetrics>>;
  let base = "";
  beforeAll(async () => {
    const registry = createRegistry("test", false);
    new Counter({ name: "steward_test_total", help: "a test counter", registers: [registry] }).inc(3);
    served = await serveMetrics(registry, 0);
    base = `http://127.0.0.1:${served.port}`;
  });
  afterAll(() => served.close());

  it("answers /healthz", async () => {
    const r = await fetch(`${base}/healthz`);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe("ok\n");
  });
  it("answers /metrics in the Prometheus text format, with the service label", async () => {
    const r = await fetch(`${base}/metrics?x=1`);
    expect(r.status).toBe(200);
    expect(await r.text()).toContain('steward_test_total{service="test"} 3');
  });
  it("answers anything else with 404", async () => {
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });
});

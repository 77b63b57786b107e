import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Counter, createRegistry, scrapeTimeGauge, serveMetrics } from "@steward/platform/metrics";

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

describe("scrapeTimeGauge", () => {
  it("reads at each scrape, one value per label value; a failed or empty read keeps the last good values", async () => {
    const registry = createRegistry("test", false);
    const reads: (Record<string, number> | Error | undefined)[] = [{ pending: 2, running: 1 }, { pending: 1 }, new Error("database down"), undefined];
    let calls = 0;
    scrapeTimeGauge(registry, {
      name: "steward_test_things",
      help: "things by state",
      label: "state",
      read: async () => {
        calls++;
        const r = reads.shift();
        if (r instanceof Error) throw r;
        return r;
      },
    });
    const lines = async () => (await registry.metrics()).split("\n").filter((l) => l.startsWith("steward_test_things{"));
    expect(await lines()).toEqual(['steward_test_things{state="pending",service="test"} 2', 'steward_test_things{state="running",service="test"} 1']);
    // A state that is gone is gone (reset), not left at its old value.
    expect(await lines()).toEqual(['steward_test_things{state="pending",service="test"} 1']);
    expect(await lines()).toEqual(['steward_test_things{state="pending",service="test"} 1']);
    expect(await lines()).toEqual(['steward_test_things{state="pending",service="test"} 1']);
    expect(calls).toBe(4);
  });
});

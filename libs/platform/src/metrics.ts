import type { ServerResponse } from "node:http";
import { listenHttp, type HttpListener } from "./http.js";
import { Registry, collectDefaultMetrics, Counter, Gauge, Histogram } from "prom-client";

export { Registry, Counter, Gauge, Histogram };

export function createRegistry(service: string, withDefaults = true): Registry {
  const r = new Registry();
  r.setDefaultLabels({ service });
  if (withDefaults) collectDefaultMetrics({ register: r });
  return r;
}

/**
 * A gauge read at scrape time (from Postgres, so every replica reports the shared truth, not its own share): one
 * value per value of its single label. A failed read keeps the values of the last good one rather than failing the scrape.
 */
export function scrapeTimeGauge<L extends string>(
  registry: Registry,
  opts: { name: string; help: string; label: L; read: () => Promise<Record<string, number> | undefined> },
): Gauge<L> {
  const { read, label } = opts;
  return new Gauge({
    name: opts.name,
    help: opts.help,
    labelNames: [label],
    registers: [registry],
    async collect() {
      const values = await read().catch(() => undefined);
      if (!values) return;
      this.reset();
      for (const [value, n] of Object.entries(values)) this.set({ [label]: value } as Record<L, string>, n);
    },
  });
}

/**
 * Answers GET /healthz, which every Steward HTTP listener has without auth (the API ports too: the dead-man and
 * container health checks poll it). Returns the route when it answered.
 */
export function answerHealth(path: string, res: ServerResponse): "/healthz" | undefined {
  if (path !== "/healthz") return undefined;
  res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
  return "/healthz";
}

/**
 * Answers the two routes of a metrics listener, without auth: GET /healthz and GET /metrics. Only a listener of its
 * own serves /metrics (`serveMetrics`, METRICS_PORT on METRICS_HOST, loopback by default): never an API port that
 * faces operators, phones or the internet. Returns the route it answered, or undefined when the request is for
 * something else.
 */
export async function answerHealthOrMetrics(path: string, method: string, res: ServerResponse, registry: Registry): Promise<"/healthz" | "/metrics" | undefined> {
  if (path === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    return "/healthz";
  }
  if (path === "/metrics" && method === "GET") {
    try {
      const body = await registry.metrics();
      res.writeHead(200, { "content-type": registry.contentType }).end(body);
    } catch (err) {
      res.writeHead(500, { "content-type": "text/plain" }).end(`${(err as Error).message}\n`);
    }
    return "/metrics";
  }
  return undefined;
}

/**
 * Serves GET /metrics (Prometheus text) and GET /healthz on a listener of its own. Port 0 picks a free port. Every
 * service serves its metrics this way (the executor and the planner beside their API port, which does not serve them).
 */
export async function serveMetrics(registry: Registry, port: number, host = "127.0.0.1"): Promise<HttpListener> {
  return listenHttp(
    (req, res) => {
      const path = (req.url ?? "/").split("?")[0] ?? "/";
      void answerHealthOrMetrics(path, req.method ?? "GET", res, registry).then((answered) => {
        if (!answered) res.writeHead(404).end();
      });
    },
    port,
    host,
    { role: "metrics" },
  );
}

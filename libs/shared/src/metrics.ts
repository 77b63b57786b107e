import { createServer, type Server } from "node:http";
import { Registry, collectDefaultMetrics, Counter, Gauge, Histogram } from "prom-client";

export { Registry, Counter, Gauge, Histogram };

export function createRegistry(service: string, withDefaults = true): Registry {
  const r = new Registry();
  r.setDefaultLabels({ service });
  if (withDefaults) collectDefaultMetrics({ register: r });
  return r;
}

/** Serves GET /metrics (Prometheus text) and GET /healthz. Port 0 picks a free port. */
export async function serveMetrics(registry: Registry, port: number, host = "127.0.0.1"): Promise<{ server: Server; port: number; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.url === "/metrics") {
      registry
        .metrics()
        .then((body) => {
          res.writeHead(200, { "content-type": registry.contentType });
          res.end(body);
        })
        .catch((err: Error) => {
          res.writeHead(500).end(err.message);
        });
    } else if (req.url === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const actual = typeof addr === "object" && addr ? addr.port : port;
  return { server, port: actual, close: () => new Promise((r) => server.close(() => r())) };
}

#!/usr/bin/env node
// A tiny real service for the demo fleet: answers /health with 200 and / with its name.
// `--fail-health-after N` makes /health start failing after N seconds (to demo `unhealthy`).
import { createServer } from "node:http";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { port: { type: "string" }, name: { type: "string", default: "demo" }, "fail-health-after": { type: "string" } } });
const port = Number(values.port ?? process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error("http-service: --port is required");
  process.exit(2);
}
const started = Date.now();
const failAfter = values["fail-health-after"] ? Number(values["fail-health-after"]) * 1000 : Infinity;
const server = createServer((req, res) => {
  if (req.url === "/health") {
    const ok = Date.now() - started < failAfter;
    res.writeHead(ok ? 200 : 503, { "content-type": "application/json" }).end(JSON.stringify({ ok, name: values.name }));
    return;
  }
  res.writeHead(200, { "content-type": "text/plain" }).end(`${values.name} says hello\n`);
});
server.listen(port, "127.0.0.1", () => console.log(`${values.name} listening on 127.0.0.1:${port}`));
// Keep-alive health-check connections must not hold the exit up.
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

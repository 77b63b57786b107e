#!/usr/bin/env node
// How fast `steward` answers (not a test): `node bench/cli-startup.js` after `npx tsc -b`; part of `npm run bench`.
// Options: --runs N (default 20), --compare DIR (another build's cli/dist, e.g. main before a change, run in the same rounds),
// --api URL --token T (a running stack, e.g. `steward up`; default: an in-process API that serves a valid snapshot).
// Every round runs each case once, in turn, so load from other work on the machine falls on all of them alike;
// `node -e 0` in the same rounds is the floor no Node CLI goes under.
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { cpus, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { Snapshot } from "@steward/contracts/world-state";

const { values } = parseArgs({ options: { runs: { type: "string", default: "20" }, compare: { type: "string" }, api: { type: "string" }, token: { type: "string" } } });
const RUNS = Number(values.runs);
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const CLI = join(root, "cli/dist/main.js");
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]; };
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]; };
const ms = (x) => `${x.toFixed(0)} ms`;

/** A world of 5 nodes × 6 services, checked against the real schema so the CLI's validation does its full work. */
function snapshot() {
  const at = new Date().toISOString();
  const nodes = {};
  for (let n = 0; n < 5; n++) {
    const services = {};
    for (let s = 0; s < 6; s++) {
      const name = `svc-${s}`;
      services[name] = { name, state: "running", health: "healthy", pid: 1000 + n * 10 + s, starts: 1, declared: true, since: at, updated_at: at, checks: { http: { ok: true, consecutive_failures: 0, at } }, last_event_id: `e-${n}-${s}` };
    }
    nodes[`node-${n}`] = { name: `node-${n}`, status: "up", last_heartbeat: at, heartbeat_interval_ms: 5000, agent_started_at: at, dropped_events: 0, host: { load1: 0.4, mem_used_pct: 41, disks: [{ path: "/", used_pct: 50, free_bytes: 1e10 }], at }, services };
  }
  return Snapshot.parse({ world: { version: 1, last_seq: 42, events_applied: 42, event_time: at, nodes }, written_at: at, observer_id: "bench" });
}

async function fakeApi() {
  const body = JSON.stringify(snapshot());
  const srv = createServer((req, res) => {
    if (req.headers.authorization !== "Bearer bench-token" || req.url !== "/api/world") {
      res.writeHead(req.url === "/api/world" ? 401 : 404, { "content-type": "application/json" }).end('{"error":{"code":"no"}}');
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(body);
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${srv.address().port}`, token: "bench-token", close: () => srv.close() };
}

/** Wall time from spawn to exit; the child's own stdout is checked, not timed separately. */
function timeRun(args, env, cwd) {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { env, cwd, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", rej);
    child.on("close", (code) => (code === 0 ? res({ ms: performance.now() - t0, out }) : rej(new Error(`node ${args.join(" ")} exited ${code}: ${err}`))));
  });
}

const api = values.api ? { url: values.api, token: values.token ?? "", close: () => undefined } : await fakeApi();
const env = { ...process.env, STEWARD_API_URL: api.url, STEWARD_TOKEN: api.token, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "" };
const builds = [["", CLI], ...(values.compare ? [[" (compare)", resolve(values.compare, "main.js")]] : [])];
const cases = [
  { name: "node -e 0 (baseline)", args: ["-e", "0"] },
  { name: "node -e 'import(\"zod\")' (reference)", args: ["-e", 'import("zod")'], cwd: join(root, "cli") },
  ...builds.flatMap(([tag, cli]) => [
    { name: `steward --help${tag}`, args: [cli, "--help"] },
    // A build from before `--version` existed has nothing to time there.
    ...(tag ? [] : [{ name: `steward --version${tag}`, args: [cli, "--version"] }]),
    { name: `steward status --json${tag}`, args: [cli, "status", "--json"], check: (out) => JSON.parse(out).world.last_seq >= 0 },
  ]),
];

const times = new Map(cases.map((c) => [c.name, []]));
for (const c of cases) {
  const r = await timeRun(c.args, env, c.cwd ?? root); // warm the file cache; not counted
  if (c.check && !c.check(r.out)) throw new Error(`${c.name}: unexpected output`);
}
for (let i = 0; i < RUNS; i++) for (const c of cases) times.get(c.name).push((await timeRun(c.args, env, c.cwd ?? root)).ms);
api.close();

const base = median(times.get(cases[0].name));
console.log(`\nsteward CLI start-up, ${RUNS} runs each, interleaved; ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, ${new Date().toISOString()}`);
console.log(`status against ${values.api ? values.api : "an in-process API (5 nodes × 6 services)"}\n`);
console.log("| command | median | p90 | min | median − baseline | × baseline |");
console.log("| --- | --- | --- | --- | --- | --- |");
for (const c of cases) {
  const xs = times.get(c.name);
  const m = median(xs);
  console.log(`| \`${c.name}\` | ${ms(m)} | ${ms(pct(xs, 90))} | ${ms(Math.min(...xs))} | ${c === cases[0] ? "-" : ms(m - base)} | ${(m / base).toFixed(2)} |`);
}

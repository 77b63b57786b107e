#!/usr/bin/env node
// How fast `steward` answers (not a test): `node bench/cli-startup.js` after `npm run build` (tsc -b, then the CLI bundle); part of `npm run bench`.
// Options: --runs N (default 20), --compare DIR (another build's cli/dist, e.g. main before a change, run in the same rounds),
// --api URL --token T (a running stack, e.g. `steward up`; default: an in-process API that serves a valid snapshot),
// --home DIR (the STEWARD_HOME of a running `steward up`: the CLI finds the API through its stack file, as an operator's does).
// Every round runs each case once, in turn, so load from other work on the machine falls on all of them alike;
// `node -e 0` in the same rounds is the floor no Node CLI goes under. Needs bash (its `time` gives CPU time too).
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { cpus, loadavg, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { Snapshot } from "@steward/contracts/world-state";

const { values } = parseArgs({ options: { runs: { type: "string", default: "20" }, compare: { type: "string" }, api: { type: "string" }, token: { type: "string" }, home: { type: "string" } } });
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

/**
 * Wall time and CPU time (user + sys) of one run, as bash's `time` measures them around `node …` (bash's own start is
 * not counted). CPU time says what a command costs whatever else the machine does; wall time is what the operator
 * waits. The child's stdout is checked, not timed separately.
 */
function timeRun(args, env, cwd) {
  return new Promise((res, rej) => {
    const script = 'TIMEFORMAT="@@time %3R %3U %3S"; time "$@"';
    const child = spawn("bash", ["-c", script, "bash", process.execPath, ...args], { env, cwd, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", rej);
    child.on("close", (code) => {
      const t = /@@time ([\d.]+) ([\d.]+) ([\d.]+)\s*$/.exec(err);
      if (code !== 0 || !t) return rej(new Error(`node ${args.join(" ")} exited ${code}: ${err}`));
      res({ ms: Number(t[1]) * 1000, cpuMs: (Number(t[2]) + Number(t[3])) * 1000, out });
    });
  });
}

const api = values.home ? undefined : values.api ? { url: values.api, token: values.token ?? "", close: () => undefined } : await fakeApi();
const env = { ...process.env, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "" };
if (api) Object.assign(env, { STEWARD_API_URL: api.url, STEWARD_TOKEN: api.token });
else {
  delete env.STEWARD_API_URL;
  delete env.STEWARD_TOKEN;
  env.STEWARD_HOME = values.home;
}
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

const times = new Map(cases.map((c) => [c.name, { wall: [], cpu: [] }]));
for (const c of cases) {
  const r = await timeRun(c.args, env, c.cwd ?? root); // warm the file cache; not counted
  if (c.check && !c.check(r.out)) throw new Error(`${c.name}: unexpected output`);
}
for (let i = 0; i < RUNS; i++) {
  for (const c of cases) {
    const r = await timeRun(c.args, env, c.cwd ?? root);
    times.get(c.name).wall.push(r.ms);
    times.get(c.name).cpu.push(r.cpuMs);
  }
}
api?.close();

const base = times.get(cases[0].name);
const baseWall = median(base.wall);
const baseCpu = median(base.cpu);
console.log(`\nsteward CLI start-up, ${RUNS} runs each, interleaved; ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, load average ${loadavg().map((x) => x.toFixed(1)).join(" ")} at the end, ${new Date().toISOString()}`);
console.log(`status against ${values.home ? `the stack in ${values.home}/stack.json` : values.api ? values.api : "an in-process API (5 nodes × 6 services)"}\n`);
console.log("| command | wall median | wall p90 | wall min | CPU median | wall − baseline | wall × baseline | CPU × baseline |");
console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
for (const c of cases) {
  const { wall, cpu } = times.get(c.name);
  const m = median(wall);
  console.log(`| \`${c.name}\` | ${ms(m)} | ${ms(pct(wall, 90))} | ${ms(Math.min(...wall))} | ${ms(median(cpu))} | ${c === cases[0] ? "-" : ms(m - baseWall)} | ${(m / baseWall).toFixed(2)} | ${(median(cpu) / baseCpu).toFixed(2)} |`);
}

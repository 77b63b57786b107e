#!/usr/bin/env node
// Bundles the CLI so `steward` starts fast: `npm run build` runs it after `tsc -b`.
//
// tsc emits one file per module (cli/dist/*.js, what `@steward/cli` exports and tests import). Loaded that way,
// `steward status` reads ~115 files, 95 of them zod's. This writes cli/dist/main.js (the `bin`) again as one file
// holding what every command needs (the dispatcher, the command table, help), and one lazily imported chunk per
// command under cli/dist/chunks/ (zod and the contracts in chunks of their own, shared by the commands that
// validate answers), so `--help` reads one file and `status` a handful.
//
//   node cli/bundle.js             build
//   node cli/bundle.js --if-stale  build only when an input changed since the last build (the test setup runs this)
//   node cli/bundle.js --check     exit 1, saying why, when the bundle is not current (a test runs this)
//
// cli/dist/chunks/manifest.json lists the modules in each emitted file (a test checks what each command loads) and
// every input file, so a stale bundle is noticed. Files are written chunks first, main.js last, each by rename: a
// `steward` starting meanwhile runs the old bundle or the new one, never half of each.
import { readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const CLI = dirname(fileURLToPath(import.meta.url));
const ROOT = join(CLI, "..");
const DIST = join(CLI, "dist");
const CHUNKS = join(DIST, "chunks");
const MANIFEST = join(CHUNKS, "manifest.json");
/** The first line after the hashbang of a bundled main.js; tsc's main.js does not have it. */
export const BUNDLE_MARK = "// steward CLI bundle, written by cli/bundle.js";

/**
 * Loaded from node_modules when a command needs it, not bundled: OpenTelemetry (CommonJS, large, and only `task` and
 * `chat` start a trace) must be one instance shared with what main.js initialises.
 */
const EXTERNAL = [/^node:/, /^@steward\/platform\/tracing$/];

/**
 * Shared code in a few named chunks, so a command reads few files and runs only what it needs: `status` reads main.js,
 * its own chunk, the executor's client with the CLI's shared code, the contracts it validates with and zod; it builds
 * no schema of the planner's and loads no YAML (zod builds every schema a file defines when the file loads: ~20 ms
 * for all the contracts).
 */
const GROUPS = [
  { name: "zod", test: /[\\/]node_modules[\\/]zod[\\/]/ },
  { name: "yaml", test: /[\\/]node_modules[\\/]yaml[\\/]/ },
  // The executor API's contracts (what `status`, `drift`, `actions` validate); the planner's stay with `task`.
  { name: "executor-contracts", test: /[\\/]libs[\\/]contracts[\\/]dist[\\/](action|limits|drift|executor-api|events|world-state)\.js$/ },
  { name: "common", test: /[\\/](cli[\\/]src[\\/](connect-api|http-fetch|stack-file|format|commands[\\/]read)\.ts|libs[\\/]platform[\\/]dist[\\/]stack-member\.js|services[\\/]executor[\\/]dist[\\/]client\.js)$/ },
];

const rel = (id) => relative(ROOT, id).split("\\").join("/");

/** Undefined when the bundle in dist is current; otherwise why not. */
export function staleness() {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(MANIFEST, "utf8"));
  } catch {
    return "no bundle yet";
  }
  let main;
  try {
    main = readFileSync(join(DIST, "main.js"), "utf8");
  } catch {
    return "no cli/dist/main.js";
  }
  // tsc -b wrote its own main.js over the bundle (main.ts changed).
  if (!main.includes(BUNDLE_MARK)) return "cli/dist/main.js is tsc's, not the bundle";
  for (const f of Object.keys(manifest.chunks)) {
    try {
      statSync(join(DIST, f));
    } catch {
      return `${f} is missing`;
    }
  }
  for (const f of [...manifest.inputs, "cli/bundle.js"]) {
    let mtime;
    try {
      mtime = statSync(join(ROOT, f)).mtimeMs;
    } catch {
      return `${f} is gone`;
    }
    if (mtime > manifest.built_at_ms) return `${f} changed`;
  }
  return undefined;
}

/** Writes `text` to `file` by rename, so a reader sees the old file or the new one. */
function writeAtomic(file, text) {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: file.endsWith("main.js") ? 0o755 : 0o644 });
  renameSync(tmp, file);
}

export async function bundle() {
  const { rolldown } = await import("rolldown");
  const builtAt = Date.now();
  const build = await rolldown({
    input: { main: join(CLI, "src/main.ts") },
    platform: "node",
    cwd: CLI,
    external: EXTERNAL,
    // main.js exports nothing anyone imports; chunks may import from it (what `includeDependenciesRecursively: false` needs).
    preserveEntrySignatures: "allow-extension",
    // Node 20.19 is the oldest Node the repo supports.
    transform: { target: "node20.19" },
    onLog(level, log) {
      // Circular imports inside zod and yaml are theirs; everything else is worth reading.
      if (log.code === "CIRCULAR_DEPENDENCY") return;
      process.stderr.write(`bundle ${level}: ${log.message}\n`);
    },
  });
  const out = await build.generate({
    format: "esm",
    entryFileNames: "[name].js",
    chunkFileNames: "chunks/[name]-[hash].js",
    // A group takes only the modules it names; what main.js needs (the errors, the HTTP helper's classes) stays there.
    codeSplitting: { groups: GROUPS, includeDependenciesRecursively: false },
  });
  await build.close();

  const chunks = out.output.filter((o) => o.type === "chunk");
  const manifest = {
    built_at_ms: builtAt,
    // What each emitted file holds, for the test of what each command loads.
    chunks: Object.fromEntries(chunks.map((c) => [c.fileName, c.moduleIds.filter((id) => !id.startsWith("\0")).map(rel)])),
    inputs: [...new Set(chunks.flatMap((c) => c.moduleIds.filter((id) => !id.startsWith("\0")).map(rel)))].sort(),
  };
  mkdirSync(CHUNKS, { recursive: true });
  const entry = chunks.find((c) => c.isEntry);
  if (!entry || entry.fileName !== "main.js") throw new Error("the bundle has no main.js");
  // The hashbang stays the first line; the mark goes under it.
  const mainCode = entry.code.startsWith("#!") ? entry.code.replace(/^(#![^\n]*\n)/, `$1${BUNDLE_MARK}\n`) : `${BUNDLE_MARK}\n${entry.code}`;
  for (const c of chunks) if (c !== entry) writeAtomic(join(DIST, c.fileName), c.code);
  writeAtomic(MANIFEST, JSON.stringify(manifest, null, 1) + "\n");
  writeAtomic(join(DIST, "main.js"), mainCode);
  // Chunks of earlier builds go once no `steward` can still be running them.
  const keep = new Set(Object.keys(manifest.chunks).map((f) => f.replace(/^chunks\//, "")));
  for (const f of readdirSync(CHUNKS)) {
    if (keep.has(f) || f === "manifest.json") continue;
    const p = join(CHUNKS, f);
    if (Date.now() - statSync(p).mtimeMs > 10 * 60_000) unlinkSync(p);
  }
  return { files: chunks.length, bytes: chunks.reduce((n, c) => n + c.code.length, 0), ms: Date.now() - builtAt };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const why = staleness();
  if (process.argv.includes("--check")) {
    if (why !== undefined) console.error(`cli/dist/main.js is not the current bundle: ${why}; run npm run build`);
    process.exit(why === undefined ? 0 : 1);
  }
  if (process.argv.includes("--if-stale") && why === undefined) process.exit(0);
  const r = await bundle();
  console.log(`cli/dist/main.js bundled (${why ?? "rebuilt"}): ${r.files} files, ${Math.round(r.bytes / 1024)} kB, ${r.ms} ms`);
}

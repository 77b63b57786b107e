// What the benchmarks measure of a process they started (from /proc, Linux only), how they describe the machine
// a figure came from and how they go through the fleet sizes: one copy here, so every bench reports them alike.
import { readdir, readFile, stat } from "node:fs/promises";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { waitFor } from "@steward/testkit";

const TICKS_PER_S = 100; // /proc clock ticks (USER_HZ, 100 on Linux)

export const loadAverage = () => loadavg().map((x) => x.toFixed(1)).join(" ");

/** `machine: …` for a bench's header: cores, memory, Node, and the load average when `load` (busy machines skew figures). */
export function machineLine({ load = false } = {}) {
  return `machine: ${cpus().length} x ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}${load ? `, load average ${loadAverage()}` : ""}`;
}

/** CPU seconds used so far (user + system), resident and peak resident memory of `pid`. */
export async function procStat(pid) {
  const fields = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1].split(" ");
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { cpuS: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S, rssMb: kb("VmRSS") / 1024, hwmMb: kb("VmHWM") / 1024 };
}

/** Watches `pid` for `seconds`: its CPU as a share of one core, and its largest RSS sampled once a second. */
export async function watchProcess(pid, seconds) {
  const s0 = await procStat(pid);
  const w0 = Date.now();
  let rssMaxMb = s0.rssMb;
  while (Date.now() - w0 < seconds * 1000) {
    await new Promise((r) => setTimeout(r, 1000));
    rssMaxMb = Math.max(rssMaxMb, (await procStat(pid)).rssMb);
  }
  const s1 = await procStat(pid);
  const windowS = (Date.now() - w0) / 1000;
  return { windowS, cpuShare: (s1.cpuS - s0.cpuS) / windowS, rssMaxMb };
}

/** Signals `pid` (an observer) to write a heap snapshot into `dir` and waits until the file is complete (its size stops growing). */
export async function heapSnapshot(pid, dir) {
  const before = new Set(await readdir(dir));
  process.kill(pid, "SIGUSR2");
  let file, size = -1;
  await waitFor("the heap snapshot written", async () => {
    file ??= (await readdir(dir)).find((f) => f.endsWith(".heapsnapshot") && !before.has(f));
    if (!file) return false;
    const s = (await stat(join(dir, file))).size;
    const done = s > 0 && s === size;
    size = s;
    return done;
  }, 600_000, 2000);
  return { file: join(dir, file), sizeMb: size / 2 ** 20 };
}

/** Runs the bench once per fleet size, one after another (they would skew each other side by side), printing each result as it comes. */
export async function eachSize(sizes, runSize) {
  const results = [];
  for (const n of sizes) {
    const r = await runSize(n);
    results.push(r);
    console.log(JSON.stringify(r));
  }
  return results;
}

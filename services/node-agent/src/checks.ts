import { execFile } from "node:child_process";
import { connect } from "node:net";
import type { HealthCheck } from "@steward/fleet/fleet-spec";

export interface CheckResult {
  ok: boolean;
  detail: string;
}

/** Runs one health check once. Never throws: a check that cannot run is a failed check. */
export async function runCheck(check: HealthCheck, ctx: { cwd: string; env: NodeJS.ProcessEnv }): Promise<CheckResult> {
  try {
    switch (check.type) {
      case "http":
        return await httpCheck(check.url, check.expect_status, check.timeout);
      case "tcp":
        return await tcpCheck(check.host, check.port, check.timeout);
      case "command":
        return await commandCheck(check.command, check.timeout, ctx);
      default: {
        const never: never = check;
        return { ok: false, detail: `unknown check type ${(never as { type: string }).type}` };
      }
    }
  } catch (err) {
    return { ok: false, detail: (err as Error)?.message ?? String(err) };
  }
}

async function httpCheck(url: string, expect: number, timeoutMs: number): Promise<CheckResult> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: "manual" });
    await res.body?.cancel().catch(() => undefined);
    return res.status === expect ? { ok: true, detail: `HTTP ${res.status}` } : { ok: false, detail: `HTTP ${res.status}, expected ${expect}` };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    if (e.name === "TimeoutError") return { ok: false, detail: `no answer within ${timeoutMs} ms` };
    return { ok: false, detail: e.cause?.code ?? e.cause?.message ?? e.message };
  }
}

function tcpCheck(host: string, port: number, timeoutMs: number): Promise<CheckResult> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const done = (r: CheckResult) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ ok: false, detail: `no connection within ${timeoutMs} ms` }), timeoutMs);
    sock.once("connect", () => done({ ok: true, detail: `connected to ${host}:${port}` }));
    sock.once("error", (err: NodeJS.ErrnoException) => done({ ok: false, detail: err.code ?? err.message }));
  });
}

function commandCheck(command: string[], timeoutMs: number, ctx: { cwd: string; env: NodeJS.ProcessEnv }): Promise<CheckResult> {
  const [file, ...args] = command as [string, ...string[]];
  return new Promise((resolve) => {
    execFile(file, args, { cwd: ctx.cwd, env: ctx.env, timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 64 * 1024 }, (err, _stdout, stderr) => {
      if (!err) return resolve({ ok: true, detail: "exit 0" });
      const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string; signal?: string };
      if (e.killed) return resolve({ ok: false, detail: `no result within ${timeoutMs} ms` });
      const tail = String(stderr).trim().slice(-200);
      resolve({ ok: false, detail: typeof e.code === "number" ? `exit ${e.code}${tail ? `: ${tail}` : ""}` : String(e.code ?? e.message) });
    });
  });
}

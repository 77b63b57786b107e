import { spawn, type ChildProcess } from "node:child_process";
import { open } from "node:fs/promises";
import { join, resolve } from "node:path";
import { withSpan } from "@steward/platform/tracing";
import type { HealthCheck, ProcessService, SecretRef } from "@steward/fleet/fleet-spec";
import type { Logger } from "@steward/platform/logger";
import type { ServiceHealth, ServiceObservation, ServiceRunState } from "@steward/contracts/events";
import { runCheck, type CheckResult } from "./checks.js";
import type { ProcessRecords } from "./process-records.js";
import { aggregateHealth, checkName, freshCheckProgress, nextCheckProgress, restartDelayMs, shouldRestart, type CheckProgress } from "./plan.js";

export class SpawnError extends Error {
  constructor(readonly service: string, readonly code: string) {
    super(`cannot start '${service}': ${code}`);
    this.name = "SpawnError";
  }
}

export interface ExitInfo {
  code: number | null;
  signal: string | null;
  stoppedByCommand: boolean;
}

export interface CheckRun {
  check: HealthCheck;
  name: string;
  progress: CheckProgress;
  /** Undefined until the check has run once since the process started. */
  lastOk: boolean | undefined;
  lastDetail: string | undefined;
  timer: NodeJS.Timeout | undefined;
}

/** What the agent wants to hear; each is called inside the probe's span, so what it publishes joins that trace. */
export interface ServiceHooks {
  onExit(svc: SupervisedService, exit: ExitInfo): void;
  onStarted(svc: SupervisedService): void;
  onCheck(svc: SupervisedService, run: CheckRun, result: CheckResult, okChanged: boolean): void;
}

export interface ServiceEnv {
  node: string;
  logDir: string;
  /** Relative `cwd`s resolve against the fleet spec's directory. */
  baseDir: string;
  stopGraceMs: number;
  logger: Logger;
  hooks: ServiceHooks;
  /** Resolves `{ secret: name }` env values from this node's stores; undefined when it cannot. */
  resolveSecret?: (ref: SecretRef) => string | undefined;
  /** Where the running process is recorded, so an agent started after this one died can find and stop it. */
  records?: ProcessRecords;
}

/** How long a process must run before a crash no longer counts toward the restart backoff. */
const STABLE_RUN_MS = 10_000;

/**
 * One supervised process: its child, its health checks and what we last knew about it.
 * Operations that change the process (start, stop, restart, policy restarts) go through `exclusive`,
 * so a stop and a start for the same service never interleave.
 */
export class SupervisedService {
  state: ServiceRunState = "stopped";
  exitCode: number | null = null;
  signal: string | null = null;
  starts = 0;
  declared = true;
  detail: string | undefined;
  private child: ChildProcess | undefined;
  private childPid: number | undefined;
  private stopRequested = false;
  private exitWaiters: (() => void)[] = [];
  private runs: CheckRun[] = [];
  private checkGeneration = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private consecutiveRestarts = 0;
  private startedAtMs = 0;
  private lock: Promise<unknown> = Promise.resolve();
  /** Record writes and removals in order: a quick exit's removal never lands before its start's write. */
  private recordOps: Promise<void> = Promise.resolve();
  private shuttingDown = false;

  constructor(readonly name: string, public spec: ProcessService, private readonly env: ServiceEnv) {}

  get pid(): number | undefined {
    return this.child ? this.childPid : undefined;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  get checks(): readonly CheckRun[] {
    return this.runs;
  }

  /** Health is measured only while the process runs; otherwise `none` (the run state says what is wrong). */
  health(): ServiceHealth {
    if (this.state !== "running") return "none";
    if (this.spec.health.length === 0) return "none";
    return aggregateHealth(this.runs.map((r) => r.progress));
  }

  observation(): ServiceObservation {
    const o: ServiceObservation = { service: this.name, state: this.state, health: this.health(), starts: this.starts, declared: this.declared };
    if (this.pid !== undefined) o.pid = this.pid;
    if (this.state === "exited" || this.state === "stopped" || this.state === "failed") {
      if (this.exitCode !== null || this.signal !== null) {
        o.exit_code = this.exitCode;
        o.signal = this.signal;
      }
    }
    if (this.detail) o.detail = this.detail.slice(0, 2000);
    return o;
  }

  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.lock.then(fn, fn);
    this.lock = next.catch(() => undefined);
    return next;
  }

  /** Starts the process unless it runs; resolves with its pid once it is spawned. */
  async start(): Promise<number> {
    this.cancelRestart();
    if (this.child && this.childPid !== undefined) return this.childPid;
    const spec = this.spec;
    const [file, ...args] = spec.command as [string, ...string[]];
    const cwd = resolve(this.env.baseDir, spec.cwd ?? ".");
    let childEnv: NodeJS.ProcessEnv;
    try {
      childEnv = this.childEnv();
    } catch (err) {
      this.state = "failed";
      this.detail = (err as Error).message;
      throw new SpawnError(this.name, (err as Error).message);
    }
    const fh = await open(join(this.env.logDir, `${this.name}.log`), "a", 0o640);
    let child: ChildProcess;
    try {
      await fh.write(`--- steward: starting ${this.name} (start ${this.starts + 1}) at ${new Date().toISOString()}\n`);
      // Own process group: stopping the service signals everything it spawned, not just the leader.
      child = spawn(file, args, { cwd, env: childEnv, detached: true, stdio: ["ignore", fh.fd, fh.fd] });
      await new Promise<void>((ok, fail) => {
        child.once("spawn", ok);
        child.once("error", fail);
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      this.state = "failed";
      this.detail = `cannot start: ${code} (command ${file}, cwd ${cwd})`;
      this.env.logger.warn({ code }, "cannot start service");
      throw new SpawnError(this.name, code);
    } finally {
      await fh.close().catch(() => undefined);
    }
    this.child = child;
    this.childPid = child.pid;
    this.starts++;
    this.startedAtMs = Date.now();
    this.state = "running";
    this.exitCode = null;
    this.signal = null;
    this.detail = undefined;
    this.stopRequested = false;
    child.on("error", (err) => this.env.logger.warn({ err: err.message }, "child process error"));
    child.once("exit", (code, signal) => this.onChildExit(child, code, signal));
    // Fresh checks before anything can be awaited: a heartbeat taken meanwhile reports this new process, and must not
    // call it healthy on the previous process's checks (a drill measured a 3 s starter "healthy again" in 0.4 s).
    this.startChecks();
    this.env.logger.info({ pid: child.pid }, "service started");
    // Recorded before the start is reported: a reply to a start command means a later agent can find this process.
    await this.recorded((r) => r.save(this.name, child.pid as number, spec.command));
    await withSpan("probe.start", { attributes: { "steward.service": this.name, "steward.pid": child.pid ?? 0 } }, () => this.env.hooks.onStarted(this));
    return child.pid as number;
  }

  /** SIGTERM to the process group, SIGKILL after the grace period; resolves once it has exited. */
  async stop(): Promise<void> {
    this.cancelRestart();
    const child = this.child;
    const pid = this.childPid;
    if (!child || pid === undefined) {
      if (this.state !== "stopped") {
        this.state = "stopped";
        this.detail = undefined;
      }
      return;
    }
    this.stopRequested = true;
    const exited = this.waitExit();
    signalGroup(pid, "SIGTERM");
    const killer = setTimeout(() => signalGroup(pid, "SIGKILL"), this.env.stopGraceMs);
    await exited;
    clearTimeout(killer);
    // Stragglers left in the group would otherwise outlive the service (the pgid cannot be reused while they live).
    signalGroup(pid, "SIGKILL", false);
  }

  /**
   * A restart drill: SIGKILL to the process group, as a crash would do it. Not a stop: the service reads `exited`
   * (killed by SIGKILL) and its restart policy applies, so the drill times the recovery an operator would get.
   */
  async kill(): Promise<void> {
    const pid = this.childPid;
    if (!this.child || pid === undefined) throw new Error(`service is ${this.state}, not running: nothing to kill`);
    const exited = this.waitExit();
    signalGroup(pid, "SIGKILL");
    await exited;
  }

  async restart(): Promise<number> {
    await this.stop();
    return this.start();
  }

  /** The agent is going away: no more policy restarts, stop the process. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    this.stopChecks();
    await this.exclusive(() => this.stop());
  }

  /** Last resort on process exit: synchronous SIGKILL of the group. */
  killNow(): void {
    if (this.childPid !== undefined && this.child) signalGroup(this.childPid, "SIGKILL");
  }

  /** A reload changed the declaration: it applies at the next start, checks restart now. */
  setSpec(spec: ProcessService): void {
    const checksChanged = JSON.stringify(spec.health) !== JSON.stringify(this.spec.health);
    this.spec = spec;
    if (checksChanged && this.running) this.startChecks();
  }

  private childEnv(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const k of ["PATH", "HOME"] as const) {
      const v = process.env[k];
      if (v !== undefined) env[k] = v;
    }
    for (const [k, v] of Object.entries(this.spec.env)) {
      if (typeof v === "string") {
        env[k] = v;
        continue;
      }
      // Never the value in the message: only which secret could not be found.
      const value = this.env.resolveSecret?.(v);
      if (value === undefined) throw new Error(`secret '${v.secret}' (for ${k}) is not available on this node`);
      env[k] = value;
    }
    return env;
  }

  private waitExit(): Promise<void> {
    if (!this.child) return Promise.resolve();
    return new Promise((r) => this.exitWaiters.push(r));
  }

  private onChildExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    const stoppedByCommand = this.stopRequested;
    this.stopRequested = false;
    this.child = undefined;
    this.state = stoppedByCommand ? "stopped" : "exited";
    this.exitCode = code;
    this.signal = signal;
    this.detail = stoppedByCommand ? undefined : signal ? `killed by ${signal}` : `exited with code ${code}`;
    this.stopChecks();
    void this.recorded((r) => r.remove(this.name));
    const ranMs = Date.now() - this.startedAtMs;
    this.env.logger[stoppedByCommand ? "info" : "warn"]({ pid: this.childPid, code, signal, ran_ms: ranMs }, stoppedByCommand ? "service stopped" : "service exited");
    const waiters = this.exitWaiters;
    this.exitWaiters = [];
    const exit: ExitInfo = { code, signal, stoppedByCommand };
    void withSpan("probe.exit", { attributes: { "steward.service": this.name, "steward.exit_code": code ?? -1, "steward.signal": signal ?? "" } }, () => this.env.hooks.onExit(this, exit))
      .catch((err: unknown) => this.env.logger.error({ err }, "exit hook failed"))
      .finally(() => waiters.forEach((w) => w()));
    if (!this.shuttingDown && shouldRestart(this.spec.restart, exit)) {
      this.consecutiveRestarts = ranMs >= STABLE_RUN_MS ? 0 : this.consecutiveRestarts + 1;
      const delay = restartDelayMs(this.consecutiveRestarts - 1);
      this.env.logger.info({ delay_ms: delay, policy: this.spec.restart }, "restarting by policy");
      this.restartTimer = setTimeout(() => {
        this.restartTimer = undefined;
        void this.exclusive(async () => {
          if (this.running || this.shuttingDown || this.state !== "exited") return;
          await this.start();
        }).catch((err: unknown) => this.env.logger.warn({ err: (err as Error).message }, "policy restart failed"));
      }, delay);
    }
  }

  /** Runs a record write in order after the previous one; a failure is logged, never fails the service. */
  private recorded(op: (r: ProcessRecords) => Promise<void>): Promise<void> {
    const records = this.env.records;
    if (!records) return Promise.resolve();
    this.recordOps = this.recordOps.then(() => op(records)).catch((err: unknown) => this.env.logger.warn({ err: (err as Error).message }, "cannot update the process record; a restarted agent may not find this process"));
    return this.recordOps;
  }

  private cancelRestart(): void {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
  }

  private startChecks(): void {
    this.stopChecks();
    const gen = this.checkGeneration;
    this.runs = this.spec.health.map((check, i) => ({
      check,
      name: checkName(check, i),
      progress: freshCheckProgress(check, Date.now()),
      lastOk: undefined,
      lastDetail: undefined,
      timer: undefined,
    }));
    // The first probe comes soon after start, so a healthy service is reported healthy quickly.
    for (const run of this.runs) this.scheduleCheck(run, gen, Math.min(run.check.interval, 1000));
  }

  private stopChecks(): void {
    this.checkGeneration++;
    for (const r of this.runs) if (r.timer) clearTimeout(r.timer);
  }

  private scheduleCheck(run: CheckRun, gen: number, delay: number): void {
    run.timer = setTimeout(() => {
      run.timer = undefined;
      void this.runCheckOnce(run, gen).finally(() => {
        if (gen === this.checkGeneration) this.scheduleCheck(run, gen, run.check.interval);
      });
    }, delay);
  }

  private async runCheckOnce(run: CheckRun, gen: number): Promise<void> {
    const cwd = resolve(this.env.baseDir, this.spec.cwd ?? ".");
    await withSpan("probe.health", { attributes: { "steward.service": this.name, "steward.check": run.name } }, async (span) => {
      const result = await runCheck(run.check, { cwd, env: this.childEnv() });
      // The process exited (or checks were reset) while the check ran: its result describes nothing current.
      if (gen !== this.checkGeneration) return;
      span.setAttribute("steward.check.ok", result.ok);
      run.progress = nextCheckProgress(run.progress, result.ok, Date.now());
      const okChanged = run.lastOk !== result.ok;
      run.lastOk = result.ok;
      run.lastDetail = result.detail;
      this.env.hooks.onCheck(this, run, result, okChanged);
    }).catch((err: unknown) => this.env.logger.error({ err, check: run.name }, "health check hook failed"));
  }
}

function signalGroup(pid: number, sig: NodeJS.Signals, fallbackToLeader = true): void {
  try {
    process.kill(-pid, sig);
  } catch {
    if (!fallbackToLeader) return;
    try {
      process.kill(pid, sig);
    } catch {
      // Already gone.
    }
  }
}

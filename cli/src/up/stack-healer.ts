import type { ChildProcess } from "node:child_process";
import { decideRestart, describeExit, engineDownLine, restartLine, type RestartPolicy } from "./restart-policy.js";

/** What the healer needs of a stack member (see `Member` in stack.ts). */
export interface Healable {
  name: string;
  engine: boolean;
  proc: ChildProcess;
  restart?(): Promise<void>;
}

export interface HealerOptions {
  policy: RestartPolicy;
  /** One line for the operator's terminal (warnings and errors go to stderr). */
  say(line: string): void;
  logFile(name: string): string;
  /** A member runs again (its `proc` is the new process): the stack file is rewritten with its pid. */
  onRestarted(m: Healable): void;
  now?: () => number;
}

/** Watches the members of a running stack and restarts those that die (see restart-policy.ts for when and how often). */
export interface StackHealer {
  watch(members: readonly Healable[]): void;
  /**
   * The stack is stopping: no more restarts, pending ones are cancelled. A restart in progress is not waited for: its
   * process is already the member's, so the stack's stop stops it, and its start-up is aborted with the stack's.
   */
  stop(): void;
}

export function createStackHealer(o: HealerOptions): StackHealer {
  const now = o.now ?? Date.now;
  const deaths = new Map<string, number[]>();
  const timers = new Set<NodeJS.Timeout>();
  let stopped = false;

  const died = (m: Healable, how: string): void => {
    if (stopped) return;
    const logFile = o.logFile(m.name);
    if (m.engine || !m.restart) {
      o.say(engineDownLine(m.name, how, logFile));
      return;
    }
    const t = now();
    const mine = [...(deaths.get(m.name) ?? []), t].filter((d) => t - d < o.policy.windowMs);
    deaths.set(m.name, mine);
    const d = o.policy.attempts === 0 ? ({ restart: false, deaths: mine.length } as const) : decideRestart(mine, t, o.policy);
    o.say(restartLine(m.name, how, d, o.policy, logFile));
    if (!d.restart) return;
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (stopped) return;
      void restartOnce(m);
    }, d.delayMs);
    timers.add(timer);
  };

  const restartOnce = async (m: Healable): Promise<void> => {
    try {
      await m.restart!();
    } catch (err) {
      if (stopped) return;
      // It died (or never answered) while starting again: one more death, decided like any other.
      if (m.proc.exitCode === null && m.proc.signalCode === null) m.proc.kill("SIGKILL");
      died(m, `did not start again (${(err as Error).message.split("\n")[0]})`);
      return;
    }
    if (stopped) return;
    follow(m);
    o.say(`${m.name} restarted (pid ${m.proc.pid})`);
    o.onRestarted(m);
  };

  /** Listens for the death of the member's current process; a restart follows the new one. */
  const follow = (m: Healable): void => {
    const proc = m.proc;
    proc.once("exit", (code, signal) => {
      if (m.proc === proc) died(m, describeExit(code, signal));
    });
  };

  return {
    watch(members) {
      for (const m of members) follow(m);
    },
    stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
  };
}

import { describe, expect, it, vi } from "vitest";
import { createIdleWait, sleep } from "../src/sleep.js";

describe("sleep", () => {
  it("ends at once when its signal aborts (an hour is never waited)", async () => {
    const ac = new AbortController();
    const p = sleep(3_600_000, ac.signal);
    ac.abort();
    await expect(p).resolves.toBeUndefined();
  });

  it("does not wait at all on a signal already aborted", async () => {
    await expect(sleep(3_600_000, AbortSignal.abort())).resolves.toBeUndefined();
  });

  it("removes its abort listener when the time is up, so a polling loop does not pile them up", async () => {
    const ac = new AbortController();
    const added = vi.spyOn(ac.signal, "addEventListener");
    const removed = vi.spyOn(ac.signal, "removeEventListener");
    for (let i = 0; i < 3; i++) await sleep(1, ac.signal);
    expect(added).toHaveBeenCalledTimes(3);
    expect(removed.mock.calls.map((c) => c[1])).toEqual(added.mock.calls.map((c) => c[1]));
  });

  it("waits without a signal", async () => {
    await expect(sleep(1)).resolves.toBeUndefined();
  });
});

describe("createIdleWait", () => {
  // An hour-long wait that settles proves the wake-up ended it; a fake clock proves a wait that should not end early.
  const settled = async (p: Promise<void>) => {
    let done = false;
    void p.then(() => (done = true));
    await vi.advanceTimersByTimeAsync(0);
    return done;
  };

  it("a wake-up ends the current wait", async () => {
    const w = createIdleWait(() => false);
    const p = w.idle(3_600_000);
    w.wake();
    await expect(p).resolves.toBeUndefined();
  });

  it("a wake-up while the loop is busy is kept: the next wait returns at once, the one after waits again", async () => {
    vi.useFakeTimers();
    try {
      const w = createIdleWait(() => false);
      w.wake();
      expect(await settled(w.idle(1000))).toBe(true);
      const again = w.idle(1000);
      expect(await settled(again)).toBe(false);
      await vi.advanceTimersByTimeAsync(1000);
      expect(await settled(again)).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it("clear() forgets a wake-up the loop's next look for work will see anyway", async () => {
    vi.useFakeTimers();
    try {
      const w = createIdleWait(() => false);
      w.wake();
      w.clear();
      expect(await settled(w.idle(1000))).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });

  it("does not wait once the loop is stopped", async () => {
    await expect(createIdleWait(() => true).idle(3_600_000)).resolves.toBeUndefined();
  });
});

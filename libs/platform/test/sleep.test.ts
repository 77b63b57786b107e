import { describe, expect, it, vi } from "vitest";
import { sleep } from "../src/sleep.js";

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

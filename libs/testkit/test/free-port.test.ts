import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { freePort } from "../src/index.js";

const ephemeralLow = (() => {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
  } catch {
    return undefined;
  }
})();

describe("freePort", () => {
  it("hands out distinct ports, even to calls made together, each one bindable", async () => {
    const ports = await Promise.all(Array.from({ length: 30 }, () => freePort()));
    expect(new Set(ports).size).toBe(30);
    for (const port of ports.slice(0, 5)) {
      const s = createServer();
      await new Promise<void>((resolve, reject) => s.once("error", reject).listen(port, "127.0.0.1", () => resolve()));
      await new Promise((r) => s.close(r));
    }
  });

  it.skipIf(!ephemeralLow || ephemeralLow < 12_000)("stays below the kernel's ephemeral range, which outgoing connections take ports from", async () => {
    const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
    for (const port of ports) expect(port).toBeLessThan(ephemeralLow!);
  });

  it("skips a port somebody listens on", async () => {
    const first = await freePort();
    // Occupy the next ports the walk would try: freePort must step over them.
    const held = [];
    for (let p = first + 1; p <= first + 3; p++) {
      const s = createServer();
      const ok = await new Promise<boolean>((r) => s.once("error", () => r(false)).listen(p, "127.0.0.1", () => r(true)));
      if (ok) held.push({ p, s });
    }
    const next = await freePort();
    for (const h of held) expect(next).not.toBe(h.p);
    await Promise.all(held.map((h) => new Promise((r) => h.s.close(r))));
  });
});

import { createServer } from "node:net";

/**
 * A loopback port the OS just handed out, released again before it returns: whoever binds it next (PostgreSQL, a demo
 * service) may find it taken meanwhile, so callers prove whom they reached or retry.
 */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (typeof a === "object" && a ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

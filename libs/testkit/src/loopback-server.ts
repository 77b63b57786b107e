import { createServer, type IncomingMessage, type RequestListener, type Server } from "node:http";

export interface LoopbackServer {
  server: Server;
  url: string;
  port: number;
  /** Closes the server, cutting open connections (long polls, streams) rather than waiting for them. */
  close(): Promise<void>;
}

/** The local stand-ins for outside services all listen the same way: a free loopback port, closed hard. */
export async function listenOnLoopback(handler: RequestListener): Promise<LoopbackServer> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The whole request body as text (the stand-ins record what they were sent, so nothing is capped). */
export async function readText(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString("utf8");
}

/** The body parsed as JSON; the raw text when it is not JSON (recorded as sent); undefined when empty. */
export async function readJsonLoose(req: IncomingMessage): Promise<unknown> {
  const text = await readText(req);
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

import { createServer, type RequestListener, type Server } from "node:http";

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

// An HTTP proxy on 127.0.0.1 that forwards every request to a server and records it: what a client costs a
// server, counted at the wire rather than inside the code under test.
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";

export interface CountingProxy {
  url: string;
  /** `METHOD /path?query` of every request forwarded, oldest first. */
  readonly requests: string[];
  /** Requests recorded since the last call (and forgets them). */
  take(): string[];
  close(): Promise<void>;
}

export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const upstream = new URL(target);
  const requests: string[] = [];
  let taken = 0;
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const forward = httpRequest(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: upstream.host },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on("error", () => {
      // Mid-answer the status is already sent: cut the connection so the client sees the failure.
      if (res.headersSent) res.destroy();
      else res.writeHead(502).end();
    });
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    take() {
      const since = requests.slice(taken);
      taken = requests.length;
      return since;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// An optional second listener that serves only /livez, /readyz and /metrics (opsPort). It keeps probes and
// scrapes apart from the API: they are not refused when the API is at its connection cap (a kubelet must not
// restart a busy replica), and /metrics never reaches whoever can reach the API. Small limits of its own,
// since only the orchestrator and Prometheus are expected here.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { StructuredLogger } from "./logger.js";
import { OPERATIONS_PATHS } from "./probes.js";

export interface OperationsListenerOptions {
  host: string;
  port: number;
  handler: (req: IncomingMessage, res: ServerResponse, path: string) => Promise<void>;
  logger: StructuredLogger;
}

export interface OperationsListener {
  url: string;
  port: number;
  /** Stops accepting and closes every connection (probes and scrapes are short; nothing is waited for). */
  close(): Promise<void>;
}

/** Connections the operations listener holds at once: probes of one kubelet and a few scrapers. */
const MAX_CONNECTIONS = 64;

export async function startOperationsListener(
  options: OperationsListenerOptions,
): Promise<OperationsListener> {
  const { logger } = options;
  const server = createServer(
    { maxHeaderSize: 16 * 1024, headersTimeout: 5_000, requestTimeout: 10_000, keepAliveTimeout: 5_000 },
    (req, res) => {
      const pathname = new URL(req.url ?? "/", "http://registry.invalid").pathname;
      const path = pathname.length > 1 ? pathname.replace(/\/+$/, "") : pathname;
      if (!OPERATIONS_PATHS.has(path)) {
        const body = JSON.stringify({ detail: "this port serves only /livez, /readyz and /metrics" });
        res
          .writeHead(404, { "content-type": "application/json", "content-length": Buffer.byteLength(body) })
          .end(body);
        return;
      }
      options.handler(req, res, path).catch((error: unknown) => {
        logger.error(`internal error answering ${path}`, error);
        if (!res.headersSent)
          res.writeHead(500, { "content-type": "application/json" }).end('{"detail":"internal error"}');
        else res.destroy();
      });
    },
  );
  server.maxConnections = MAX_CONNECTIONS;
  server.on("clientError", (_error, socket) => {
    // Why safe: a broken probe or scrape has nobody to answer; the next one tries again.
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = options.host.includes(":") ? `[${options.host}]` : options.host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

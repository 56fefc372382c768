// Prometheus metrics of one registry server, on a prom-client Registry of its own (never the global default),
// so several servers in one process (tests, benches) keep separate figures. Requests are labelled by route
// pattern, never by raw path: paths carry agent and installation ids, which would leak and would make one
// series per agent. The store reports heartbeat batches and pool use through the StoreTelemetry hooks.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { PoolUsage, StoreTelemetry } from "./store-hooks.js";

/** Route label of a request that matched no route (404, 405, malformed): one series, whatever the path. */
export const UNMATCHED_ROUTE = "(unmatched)";
/** Status label of a request whose client left before the reply was written (nginx's convention). */
export const CLIENT_CLOSED_STATUS = "499";

const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** Request latency buckets in seconds: sub-millisecond reads up to 30 s long-polls. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Agents per heartbeat write: 1 for unbatched stores, up to thousands for a batching one. */
const BATCH_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000];

export interface RegistryMetricsSources {
  /** Relay inbox long-polls parked now. */
  longPolls(): number;
  /** Open client connections now. */
  connections(): number;
  /** True once the server drains (SIGTERM). */
  draining(): boolean;
  /** Unacknowledged relay messages held, when the store can tell it cheaply; undefined leaves it out. */
  heldMessages?(): Promise<number> | number;
  /** Told when a source fails during a scrape (the scrape still answers, without that figure). */
  onSourceError?(what: string, error: unknown): void;
}

export interface RegistryMetricsOptions {
  /** Also export the Node process figures (CPU, memory, event loop lag, GC) with prefix agent_registry_. */
  processMetrics?: boolean;
}

export class RegistryMetrics implements StoreTelemetry {
  readonly registry = new Registry();
  readonly #requests: Counter<"method" | "route" | "status">;
  readonly #latency: Histogram<"method" | "route" | "status">;
  readonly #heartbeatBatches: Histogram;
  readonly #pool: Gauge<"state">;

  constructor(sources: RegistryMetricsSources, options: RegistryMetricsOptions = {}) {
    const registers = [this.registry];
    this.#requests = new Counter({
      name: "agent_registry_http_requests_total",
      help: "HTTP requests answered, by method, route pattern and status (probes and /metrics excluded)",
      labelNames: ["method", "route", "status"],
      registers,
    });
    this.#latency = new Histogram({
      name: "agent_registry_http_request_duration_seconds",
      help: "Time from request to the end of its reply, by method, route pattern and status (long-polls wait up to 30 s)",
      labelNames: ["method", "route", "status"],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    new Gauge({
      name: "agent_registry_relay_inbox_waiters",
      help: "Relay inbox long-polls parked now",
      registers,
      collect() {
        this.set(sources.longPolls());
      },
    });
    new Gauge({
      name: "agent_registry_open_connections",
      help: "Client connections open now",
      registers,
      collect() {
        this.set(sources.connections());
      },
    });
    new Gauge({
      name: "agent_registry_draining",
      help: "1 while the server drains for shutdown (readiness fails), else 0",
      registers,
      collect() {
        this.set(sources.draining() ? 1 : 0);
      },
    });
    const heldMessages = sources.heldMessages;
    if (heldMessages) {
      new Gauge({
        name: "agent_registry_relay_inbox_messages",
        help: "Unacknowledged relay messages held in all inboxes",
        registers,
        async collect() {
          try {
            this.set(await heldMessages());
          } catch (error) {
            // The scrape answers without this figure; a closed or unreachable store shows on /readyz.
            this.reset();
            sources.onSourceError?.("relay inbox messages", error);
          }
        },
      });
    }
    this.#heartbeatBatches = new Histogram({
      name: "agent_registry_heartbeat_batch_size",
      help: "Agents whose last_seen one heartbeat write covered (1 = unbatched)",
      buckets: BATCH_BUCKETS,
      registers,
    });
    this.#pool = new Gauge({
      name: "agent_registry_db_pool_connections",
      help: "Database pool connections by state (total, idle, waiting callers), as reported by the store; absent for SQLite, which has one connection and no pool",
      labelNames: ["state"],
      registers,
    });
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: "agent_registry_" });
  }

  /** One answered request. `route` is the matched pattern or UNMATCHED_ROUTE, never the raw path. */
  observeRequest(method: string, route: string, status: string, seconds: number): void {
    const labels = { method: KNOWN_METHODS.has(method) ? method : "OTHER", route, status };
    this.#requests.inc(labels);
    this.#latency.observe(labels, seconds);
  }

  heartbeatBatch(size: number): void {
    if (Number.isFinite(size) && size > 0) this.#heartbeatBatches.observe(size);
  }

  poolUsage(usage: PoolUsage): void {
    this.#pool.set({ state: "total" }, usage.total);
    this.#pool.set({ state: "idle" }, usage.idle);
    this.#pool.set({ state: "waiting" }, usage.waiting);
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}

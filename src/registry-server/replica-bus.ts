// Cross-replica wake-ups of relay long-polls: every replica holds one PostgreSQL connection that LISTENs on the
// inbox channel, to which a send NOTIFYs in the transaction storing the message (so the wake-up is delivered on
// commit, never for a message that was rolled back). The payload is the recipient's public peer id, never its
// installation id (a secret). When the connection is lost, the bus reconnects with backoff and then wakes every
// local long-poll once: they read their inboxes again, so no message sent while the bus was down is missed.
import pg from "pg";

/** The channel sends notify and replicas listen on. */
export const INBOX_CHANNEL = "agent_registry_inbox";

export interface ReplicaBusOptions {
  connectionString: string;
  /** A message was stored for the inbox whose peer id is `peerId` (on any replica). */
  onInbox: (peerId: string) => void;
  /** The bus (re)connected after a loss: wake-ups may have been missed meanwhile. */
  onResync: () => void;
  /** Told when the listening connection breaks (reconnects follow on their own). */
  onError?: (error: unknown) => void;
  /** First reconnect delay in ms (default 100), doubled up to maxBackoffMs (default 5,000). */
  backoffMs?: number;
  maxBackoffMs?: number;
}

const PEER_ID = /^p_[0-9a-f]{32}$/;

export class ReplicaBus {
  readonly #options: ReplicaBusOptions;
  #client: pg.Client | undefined;
  #closed = false;
  #connected = false;
  #retry: NodeJS.Timeout | undefined;
  #reconnects = 0;

  private constructor(options: ReplicaBusOptions) {
    this.#options = options;
  }

  /** Connects and listens; rejects when the first connection fails (the server then does not start). */
  static async start(options: ReplicaBusOptions): Promise<ReplicaBus> {
    const bus = new ReplicaBus(options);
    await bus.#connect();
    return bus;
  }

  /** The listening connection is up (readiness: wake-ups from other replicas arrive). */
  get connected(): boolean {
    return this.#connected;
  }

  /** How often the bus reconnected after a loss. */
  get reconnects(): number {
    return this.#reconnects;
  }

  async #connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#options.connectionString });
    let lost = false;
    const onLost = (error?: unknown) => {
      if (lost) return;
      lost = true;
      this.#connected = false;
      if (this.#client === client) this.#client = undefined;
      client.removeAllListeners("notification");
      // Why: a broken client must not keep its socket; end() of a dead one only rejects, which says nothing new.
      client.end().catch(() => {});
      if (this.#closed) return;
      if (error !== undefined) this.#options.onError?.(error);
      this.#scheduleReconnect(this.#options.backoffMs ?? 100);
    };
    client.on("error", onLost);
    client.on("end", () => onLost());
    client.on("notification", (message) => {
      const payload = message.payload ?? "";
      // Anyone with access to the database can NOTIFY: only well-formed peer ids wake anything.
      if (message.channel === INBOX_CHANNEL && PEER_ID.test(payload)) this.#options.onInbox(payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${INBOX_CHANNEL}`);
    } catch (error) {
      lost = true;
      client.removeAllListeners();
      client.on("error", () => {
        // Why safe: this client failed to start and is being thrown away.
      });
      await client.end().catch(() => {
        // Why safe: as above.
      });
      throw error;
    }
    if (this.#closed) {
      lost = true;
      await client.end();
      return;
    }
    this.#client = client;
    this.#connected = true;
  }

  #scheduleReconnect(delay: number): void {
    if (this.#closed || this.#retry) return;
    this.#retry = setTimeout(async () => {
      this.#retry = undefined;
      try {
        await this.#connect();
        this.#reconnects++;
        // Messages stored while no LISTEN was open woke nobody here: every local long-poll reads again.
        this.#options.onResync();
      } catch (error) {
        this.#options.onError?.(error);
        this.#scheduleReconnect(Math.min(delay * 2, this.#options.maxBackoffMs ?? 5000));
      }
    }, delay);
    this.#retry.unref();
  }

  /** Breaks the listening connection as a network fault would (tests of the reconnect). */
  simulateLoss(): void {
    this.#client?.emit("error", new Error("listening connection lost (simulated)"));
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = undefined;
    const client = this.#client;
    this.#client = undefined;
    this.#connected = false;
    if (client) {
      client.removeAllListeners("end");
      await client.end().catch(() => {
        // Why safe: closing; a connection that already broke has nothing left to end.
      });
    }
  }
}

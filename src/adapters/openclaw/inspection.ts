// Observability of the live actors: one debug log line per transition (secrets redacted), and, when
// AGENT_REGISTRY_INSPECT=ws://127.0.0.1:<port> is set, the Stately inspector through a loopback relay
// (`npm run inspect` starts one). The relay URL must be loopback: actor state never leaves the machine.
import type { InspectionEvent, Observer } from "xstate";
import type { Log } from "../../log.js";

export type DebugLog = Pick<Log, "warn" | "debug">;

const SECRET_KEY = /token|key|secret|password|authorization/i;

/** Deep copy with secret-looking fields replaced; bounded depth so a huge context cannot flood the log. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6) return "…";
  if (Array.isArray(value)) return value.slice(0, 20).map((item) => redact(item, depth + 1));
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) {
      out[key] = SECRET_KEY.test(key) && inner != null ? "[redacted]" : redact(inner, depth + 1);
    }
    return out;
  }
  return value;
}

function stateLabel(value: unknown): string {
  if (typeof value === "string") return value;
  if (value && typeof value === "object") {
    return Object.entries(value)
      .map(([key, inner]) => `${key}.${stateLabel(inner)}`)
      .join(",");
  }
  return String(value);
}

/** Logs `actor event: from -> to` for every transition of every actor in the system. */
export function createTransitionLogger(log: DebugLog): Observer<InspectionEvent> {
  const last = new Map<string, string>();
  return {
    next(event) {
      if (event.type !== "@xstate.snapshot" || !log.debug) return;
      const snapshot = event.snapshot as { value?: unknown; status?: string };
      if (snapshot.value === undefined) return; // promise/callback actors have no state value
      const actor = (event.actorRef as { id?: string }).id ?? "actor";
      const to = stateLabel(snapshot.value);
      const from = last.get(actor);
      last.set(actor, to);
      if (from === to) return;
      const eventType = (redact(event.event) as { type?: string }).type ?? "?";
      log.debug(`agent-registry: ${actor} ${eventType}: ${from ?? "(start)"} -> ${to}`);
    },
  };
}

function isLoopbackWs(url: string): boolean {
  try {
    const parsed = new URL(url);
    return (
      (parsed.protocol === "ws:" || parsed.protocol === "wss:") &&
      ["127.0.0.1", "localhost", "[::1]"].includes(parsed.hostname)
    );
  } catch {
    return false;
  }
}

type InspectFn = (event: InspectionEvent) => void;

/**
 * Combines the transition logger with the optional Stately inspector. The inspector module is imported lazily
 * and only when asked for: it retries forever when nothing listens, so it is never on by default.
 */
export async function createInspect(
  log: DebugLog,
  env = process.env,
): Promise<{ inspect: InspectFn; stop(): void }> {
  const logger = createTransitionLogger(log);
  const url = env.AGENT_REGISTRY_INSPECT?.trim();
  let stately: { inspect: Observer<InspectionEvent>; stop(): void } | undefined;
  if (url) {
    if (!isLoopbackWs(url)) {
      log.warn(`agent-registry: AGENT_REGISTRY_INSPECT must be a ws:// URL on 127.0.0.1; ignoring ${url}`);
    } else {
      const { createWebSocketInspector } = await import("@statelyai/inspect");
      const inspector = createWebSocketInspector({
        url,
        serialize: (event) => redact(event) as typeof event,
      });
      inspector.start();
      stately = { inspect: inspector.inspect as Observer<InspectionEvent>, stop: () => inspector.stop() };
    }
  }
  return {
    inspect(event) {
      logger.next?.(event);
      stately?.inspect.next?.(event);
    },
    stop() {
      stately?.stop();
    },
  };
}

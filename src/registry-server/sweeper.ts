// The periodic purge sweep of a server: a timer (unref'd) that runs it each interval. On a store shared by
// replicas the sweep takes a turn instead (replica.ts): one replica per interval does the work, the others find
// it done, and a replica that dies mid-sweep frees its turn with its database session.
import { type SharedStore, SWEEP_DUE_FRACTION } from "./replica.js";

export interface SweeperOptions<T> {
  intervalMs: number;
  sweep: () => Promise<T>;
  /** This process's own housekeeping, run on every tick whether or not it is this replica's turn to sweep. */
  local?: () => void;
  /** The store's replica features; without them every tick sweeps (one process is the whole registry). */
  shared: SharedStore | undefined;
  onError: (error: unknown) => void;
  /** Told after every tick whether this process swept (tests count the sweeps of many replicas). */
  onTick?: (ran: boolean) => void;
}

export interface Sweeper {
  /** Stops the timer and waits for a sweep in progress (the store must outlive it). */
  stop(): Promise<void>;
}

export function startSweeper<T>(options: SweeperOptions<T>): Sweeper {
  const { intervalMs, sweep, shared } = options;
  if (intervalMs <= 0) return { stop: async () => {} };
  let running: Promise<void> | undefined;
  const tick = async () => {
    try {
      options.local?.();
      let ran = true;
      if (shared) ran = (await shared.sweepTurn(intervalMs * SWEEP_DUE_FRACTION, sweep)).ran;
      else await sweep();
      options.onTick?.(ran);
    } catch (error) {
      options.onError(error);
    } finally {
      running = undefined;
    }
  };
  const timer = setInterval(() => {
    // A sweep longer than the interval is not started twice by this process either.
    running ??= tick();
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}

// A manual clock for actors under test, built only on XState's public surface: it is the `clock` option of
// `createActor`, and it learns which delayed event each timeout belongs to from the `inspect` option, so tests can
// list pending timers by event type without reading the actor system's private scheduler state.
import type { InspectionEvent } from "xstate";

export interface PendingTimeout {
  id: number;
  /** The delayed event this timeout delivers (`xstate.after.<delay>.<stateId>` for `after`), when known. */
  eventType: string | undefined;
  /** What the actor asked for, in ms. */
  delay: number;
  /** Clock time at which it fires. */
  dueAt: number;
}

interface Timeout extends PendingTimeout {
  fn: () => void;
}

/** A delayed send announced by inspection, waiting for the `setTimeout` that schedules it. */
interface Announcement {
  eventType: string;
  delay: number;
}

function delayedEventOf(inspection: InspectionEvent): Announcement | undefined {
  if (inspection.type !== "@xstate.action") return undefined;
  // A delayed raise or sendTo executes with its resolved event and delay in ms; a delay-less one has no number.
  const params = inspection.action.params as { event?: { type?: unknown }; delay?: unknown } | undefined;
  const type = params?.event?.type;
  if (typeof params?.delay !== "number" || typeof type !== "string") return undefined;
  return { eventType: type, delay: params.delay };
}

export class TestClock {
  private time = 0;
  private nextId = 1;
  private readonly timeouts = new Map<number, Timeout>();
  private readonly announced: Announcement[] = [];
  /** Every timeout that fired, oldest first. */
  readonly fired: PendingTimeout[] = [];

  /**
   * Pass as `createActor(logic, { clock, inspect: clock.inspect })`. XState reports a delayed action when it
   * executes and hands it to the clock right after, so announcements and timeouts pair up in order (matched by
   * delay as well, so a change in that order shows up as an unlabelled timer rather than a wrongly labelled one).
   */
  readonly inspect = (inspection: InspectionEvent): void => {
    const announcement = delayedEventOf(inspection);
    if (announcement) this.announced.push(announcement);
  };

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, delay: number): number {
    const id = this.nextId++;
    const index = this.announced.findIndex((announcement) => announcement.delay === delay);
    const [announcement] = index === -1 ? [] : this.announced.splice(index, 1);
    this.timeouts.set(id, { id, fn, delay, dueAt: this.time + delay, eventType: announcement?.eventType });
    return id;
  }

  clearTimeout(id: number): void {
    this.timeouts.delete(id);
  }

  /** Live timeouts, the next to fire first. */
  pending(): PendingTimeout[] {
    return [...this.timeouts.values()]
      .sort((a, b) => a.dueAt - b.dueAt || a.id - b.id)
      .map(({ id, eventType, delay, dueAt }) => ({ id, eventType, delay, dueAt }));
  }

  /**
   * Moves time forward by `ms`, firing every timeout that falls due on the way in due order, each at its own due
   * time (so what it does sees the right `now()`), including timeouts scheduled by an earlier one.
   */
  advance(ms: number): void {
    if (ms < 0) throw new Error(`TestClock.advance: cannot go back in time (${ms} ms)`);
    const target = this.time + ms;
    for (let next = this.pending()[0]; next && next.dueAt <= target; next = this.pending()[0]) {
      const timeout = this.timeouts.get(next.id)!;
      this.timeouts.delete(next.id);
      this.time = next.dueAt;
      this.fired.push(next);
      timeout.fn();
    }
    this.time = target;
  }
}

// A generic test harness for one machine: the real machine with fake promise actors, recorded named actions and
// a TestClock whose pending timers can be listed by the delayed event they will deliver.
import {
  type Actor,
  type AnyActorRef,
  type AnyStateMachine,
  createActor,
  type EventFrom,
  fromPromise,
  type InputFrom,
  type SnapshotFrom,
} from "xstate";
import { createFakeActors, type FakeActors } from "./fake-actors.js";
import { TestClock } from "./test-clock.js";

export interface RecordedAction {
  name: string;
  params: unknown;
  /** Simulated time at which the action ran. */
  at: number;
}

export interface PendingTimer {
  /** The event the timer will deliver, e.g. `xstate.after.heartbeatInterval.account.online.waiting`. */
  eventType: string;
  /** The delay the machine asked for, in ms. */
  delay: number;
  /** Simulated ms until it fires. */
  remainingMs: number;
}

export interface HarnessOptions<TMachine extends AnyStateMachine> {
  machine: TMachine;
  input?: InputFrom<TMachine>;
  /** Names of the promise actors to replace with fakes (the `src` names in `setup({actors})`). */
  actors: readonly string[];
  /** Names of actions to replace with recorders (side-effect actions provided by the composition root). */
  actions?: readonly string[];
}

export interface Harness<TMachine extends AnyStateMachine> {
  readonly actor: Actor<TMachine>;
  readonly clock: TestClock;
  readonly fakes: FakeActors;
  readonly effects: readonly RecordedAction[];
  /** Errors the root actor reported to its observer (an escalated error ends the actor). */
  readonly errors: readonly unknown[];
  snapshot(): SnapshotFrom<TMachine>;
  start(): Promise<void>;
  send(event: EventFrom<TMachine>): Promise<void>;
  /** Moves simulated time forward, firing due timers, then lets promise callbacks run. */
  advance(ms: number): Promise<void>;
  /** Lets settled fake promises deliver their done/error events. */
  flush(): Promise<void>;
  timers(): PendingTimer[];
  timer(eventType: string): PendingTimer | undefined;
  stop(): void;
}

/** Settles pending promise callbacks: one macrotask turn runs every queued microtask (promise reactions). */
export async function flushMicrotasks(rounds = 1): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** What a running harness exposes to the shared fake implementations (found through the actor system). */
interface HarnessSink {
  fakes: FakeActors;
  record(name: string, params: unknown): void;
}

const sinks = new WeakMap<object, HarnessSink>();
const providedMachines = new WeakMap<AnyStateMachine, Map<string, AnyStateMachine>>();

function sinkOf(system: object): HarnessSink {
  const sink = sinks.get(system);
  if (!sink) throw new Error("fake actor ran outside a test harness");
  return sink;
}

/**
 * The machine with fakes provided, built once per machine and name set: `provide` rebuilds the whole state node
 * tree, which dominated replay time. The shared fakes route each call to the harness owning the actor system.
 */
function providedMachine(machine: AnyStateMachine, actors: readonly string[], actions: readonly string[]) {
  const key = JSON.stringify([actors, actions]);
  let byKey = providedMachines.get(machine);
  if (!byKey) {
    byKey = new Map();
    providedMachines.set(machine, byKey);
  }
  const cached = byKey.get(key);
  if (cached) return cached;
  const logic = Object.fromEntries(
    actors.map((src) => [
      src,
      fromPromise<unknown, unknown>(({ input, self, signal, system }) =>
        sinkOf(system).fakes.start(src, { input, self, signal }),
      ),
    ]),
  );
  const recorders = Object.fromEntries(
    actions.map((name) => [
      name,
      ({ self }: { self: AnyActorRef }, params: unknown) => sinkOf(self.system).record(name, params),
    ]),
  );
  // provide() is typed per machine; the harness is generic over machines, so it passes the fakes untyped.
  const provided = machine.provide({ actors: logic, actions: recorders });
  byKey.set(key, provided);
  return provided;
}

export function createHarness<TMachine extends AnyStateMachine>(
  options: HarnessOptions<TMachine>,
): Harness<TMachine> {
  const fakes = createFakeActors(options.actors);
  const clock = new TestClock();
  const effects: RecordedAction[] = [];
  const errors: unknown[] = [];

  const machine = providedMachine(options.machine, options.actors, options.actions ?? []) as TMachine;
  const actor = createActor(machine, {
    clock,
    inspect: clock.inspect,
    ...(options.input === undefined ? {} : { input: options.input }),
  }) as Actor<TMachine>;
  actor.subscribe({ error: (error) => errors.push(error) });
  sinks.set(actor.system, {
    fakes,
    record: (name, params) => effects.push({ name, params, at: clock.now() }),
  });
  const timers = (): PendingTimer[] =>
    clock.pending().map((timeout) => {
      if (timeout.eventType === undefined) {
        throw new Error(
          `a ${timeout.delay} ms timeout has no delayed event: XState no longer reports delayed actions through inspection as TestClock expects`,
        );
      }
      return { eventType: timeout.eventType, delay: timeout.delay, remainingMs: timeout.dueAt - clock.now() };
    });

  return {
    actor,
    clock,
    fakes,
    effects,
    errors,
    snapshot: () => actor.getSnapshot() as SnapshotFrom<TMachine>,
    async start() {
      actor.start();
      await flushMicrotasks();
    },
    async send(event) {
      actor.send(event);
      await flushMicrotasks();
    },
    async advance(ms) {
      clock.advance(ms);
      await flushMicrotasks();
    },
    flush: () => flushMicrotasks(),
    timers,
    timer: (eventType) => timers().find((timer) => timer.eventType === eventType),
    stop: () => actor.stop(),
  };
}

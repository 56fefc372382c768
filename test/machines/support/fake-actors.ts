// Fake promise actors for model-based and scenario tests: every invocation is recorded as a call that stays
// pending until the test resolves or rejects it, so a test decides exactly when (and how) each side effect ends.
import { fromPromise, type PromiseActorLogic } from "xstate";

export type FakeCallStatus = "pending" | "resolved" | "rejected" | "aborted";

export interface FakeCall {
  /** Sequence number over all fake actors of one registry (0-based). */
  seq: number;
  /** The implementation name (the `src` in `setup({actors})`). */
  src: string;
  /** The invoke/spawn id of the actor (what `xstate.done.actor.<id>` events carry). */
  actorId: string;
  input: unknown;
  status: FakeCallStatus;
  settle(outcome: { output: unknown } | { error: unknown }): void;
}

export interface FakeActors {
  /** Implementations to hand to `machine.provide({actors})`. */
  readonly logic: Record<string, PromiseActorLogic<unknown, unknown>>;
  /** Records one invocation of `src` (used by shared implementations that route calls to this registry). */
  start(src: string, args: { input: unknown; self: { id: string }; signal: AbortSignal }): Promise<unknown>;
  /** Every call ever made, in order. */
  readonly calls: readonly FakeCall[];
  /** Calls still running: started, not settled, not aborted by the machine leaving the state. */
  inFlight(): FakeCall[];
  /** Calls of one implementation (any status). */
  callsOf(src: string): FakeCall[];
  /** The single in-flight call of an implementation or actor id; throws when there is none or several. */
  pending(srcOrActorId: string): FakeCall;
  resolve(srcOrActorId: string, output: unknown): FakeCall;
  reject(srcOrActorId: string, error: unknown): FakeCall;
}

export function createFakeActors(names: readonly string[]): FakeActors {
  const calls: FakeCall[] = [];

  const start: FakeActors["start"] = (src, { input, self, signal }) =>
    new Promise<unknown>((resolve, reject) => {
      const call: FakeCall = {
        seq: calls.length,
        src,
        actorId: self.id,
        input,
        status: "pending",
        settle(outcome) {
          if (call.status !== "pending") {
            throw new Error(`fake ${src}#${call.seq} already ${call.status}`);
          }
          if ("output" in outcome) {
            call.status = "resolved";
            resolve(outcome.output);
          } else {
            call.status = "rejected";
            reject(outcome.error);
          }
        },
      };
      signal.addEventListener("abort", () => {
        if (call.status === "pending") call.status = "aborted";
      });
      calls.push(call);
    });

  const logic = Object.fromEntries(
    names.map((name) => [name, fromPromise<unknown, unknown>((args) => start(name, args))]),
  );

  const inFlight = () => calls.filter((call) => call.status === "pending");

  const pending = (key: string): FakeCall => {
    const matches = inFlight().filter((call) => call.src === key || call.actorId === key);
    if (matches.length !== 1) {
      const running = inFlight()
        .map((call) => `${call.src}(${call.actorId})`)
        .join(", ");
      throw new Error(`expected exactly one in-flight call of ${key}, found ${matches.length} [${running}]`);
    }
    return matches[0]!;
  };

  return {
    logic,
    start,
    calls,
    inFlight,
    callsOf: (src) => calls.filter((call) => call.src === src),
    pending,
    resolve(key, output) {
      const call = pending(key);
      call.settle({ output });
      return call;
    },
    reject(key, error) {
      const call = pending(key);
      call.settle({ error });
      return call;
    },
  };
}

// Event discovery for graph traversal with payloads. Passing `events` to xstate/graph replaces its discovery, so
// this keeps discovery (every event the active states handle) and substitutes payloads only for the listed types;
// an event type listed several times yields one branch per payload.
import { __unsafe_getAllOwnEventDescriptors, type AnyMachineSnapshot, type EventObject } from "xstate";

/** An event with its payload (done events carry `output`, error events `error`). */
export type EventWithPayload = { type: string } & Record<string, unknown>;

export type PayloadSource<TSnapshot extends AnyMachineSnapshot> =
  | readonly EventWithPayload[]
  | ((snapshot: TSnapshot) => readonly EventWithPayload[]);

export function eventsWithPayloads<TSnapshot extends AnyMachineSnapshot, TEvent extends EventObject>(
  payloads: PayloadSource<TSnapshot>,
): (snapshot: TSnapshot) => TEvent[] {
  return (snapshot) => {
    const known = typeof payloads === "function" ? payloads(snapshot) : payloads;
    const types: string[] = __unsafe_getAllOwnEventDescriptors(snapshot);
    return types.flatMap((type) => {
      const matching = known.filter((event) => event.type === type);
      return (matching.length ? matching : [{ type }]) as unknown as TEvent[];
    });
  };
}

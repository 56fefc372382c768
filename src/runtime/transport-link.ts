// What the account runtime needs from a transport, whichever it is: the Transport for outbound calls and trust
// decisions (null while unusable, with the reason), the inbox the root's `inbox` loop reads, and what the inbox
// reports for status. Built by pilot-link.ts and relay-link.ts; `noneLink` is discovery only.
import type { Transport } from "../adapters/transport/transport.js";
import type { PollSummary, RunCycleInput } from "../machines/poll.machine.js";
import type { InboxReport, NetworkCounters } from "./account-network.js";

/** One inbox as the poll machine drives it: a cycle at a time, and (Pilot) a watcher that wakes the loop. */
export interface InboxSource {
  runCycle(input: RunCycleInput, signal: AbortSignal): Promise<PollSummary>;
  watch?(onWake: () => void): () => void;
  close(): Promise<void>;
}

export interface TransportLink {
  transport(): Transport | null;
  unavailableReason(): string | null;
  inbox: InboxSource | null;
  /** Transport "auto": the relay inbox, read by the root's `relayInbox` loop (the Pilot files are `inbox`). */
  relayInbox?: InboxSource | null;
  report(): InboxReport;
  counters(): Omit<NetworkCounters, "sent" | "lastOutboundAt">;
  close(): Promise<void>;
}

export const NO_TRANSPORT_REASON =
  'Messaging is off for this account (transport "none"); set transport to "pilot", "relay" or "auto"';

export function noneLink(): TransportLink {
  return {
    transport: () => null,
    unavailableReason: () => NO_TRANSPORT_REASON,
    inbox: null,
    report: () => ({ undelivered: [], deadLettered: [] }),
    counters: () => ({ dispatched: 0, refused: {}, deadLettered: 0, duplicates: 0, lastInboundAt: null }),
    close: async () => {},
  };
}

export { idleSummary } from "../machines/poll.machine.js";

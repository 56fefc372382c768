// The inbox loops the benches measure: the poll machine driving each inbox adapter, started the same way as in
// the adapter tests (src itself only creates the account root).
export {
  type PilotReceiver,
  type RelayReceiver,
  startPilotReceiver,
  startRelayReceiver,
} from "../../test/support/inbox-loops.js";

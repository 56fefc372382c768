// Every envelope this account sends leaves signed (see envelope.ts): a decorator over whichever transport is up,
// so the outbox, receipts and replies sign in one place and no sender can forget to.
import type { Identity } from "../../identity/keys.js";
import { type Envelope, signEnvelope } from "./envelope.js";
import type { PeerRef, Transport } from "./transport.js";

/** The transport with signing added; `recipient` names whom an envelope is for (their pinned key, else hostname). */
export function signingTransport(
  inner: Transport,
  identity: Identity,
  recipient: (to: PeerRef) => string,
): Transport {
  return {
    get kind() {
      return inner.kind;
    },
    send: async (to: PeerRef, envelope: Envelope, signal?: AbortSignal) =>
      inner.send(to, await signEnvelope(envelope, identity, recipient(to)), signal),
    requestTrust: (peer, introduction) => inner.requestTrust(peer, introduction),
    listPending: () => inner.listPending(),
    listTrusted: () => inner.listTrusted(),
    approve: (peer) => inner.approve(peer),
    reject: (peer, reason) => inner.reject(peer, reason),
    untrust: (peer) => inner.untrust(peer),
  };
}

/** One signing wrapper per transport instance (the link hands out the same transport until it changes). */
export function signingTransports(
  identity: Identity,
  recipient: (to: PeerRef) => string,
): (inner: Transport | null) => Transport | null {
  const wrapped = new WeakMap<Transport, Transport>();
  return (inner) => {
    if (!inner) return null;
    let signed = wrapped.get(inner);
    if (!signed) {
      signed = signingTransport(inner, identity, recipient);
      wrapped.set(inner, signed);
    }
    return signed;
  };
}

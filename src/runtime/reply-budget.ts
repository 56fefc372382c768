// Stops endless agent ping-pong: each peer gets at most `budget` automatic replies from our agent until a
// deliberate message (the owner's `openclaw message send`, or the agent_network tool's contact) resets it.
/** What became of the agent's automatic reply to a peer. */
export type ReplyOutcome = "sent" | "untrusted" | "budget_spent";

export class ReplyBudget {
  readonly #used = new Map<string, number>();

  constructor(readonly budget: number) {}

  /** Takes one automatic reply for `peer`; false when the budget is spent. */
  take(peer: string): boolean {
    const used = this.#used.get(peer) ?? 0;
    if (used >= this.budget) return false;
    this.#used.set(peer, used + 1);
    return true;
  }

  /** Gives back a reply taken for `peer` that was never sent: only replies that left count against the budget. */
  refund(peer: string): void {
    const used = this.#used.get(peer) ?? 0;
    if (used <= 1) this.#used.delete(peer);
    else this.#used.set(peer, used - 1);
  }

  reset(peer: string): void {
    this.#used.delete(peer);
  }

  remaining(peer: string): number {
    return this.budget - (this.#used.get(peer) ?? 0);
  }
}

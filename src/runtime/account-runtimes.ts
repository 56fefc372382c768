// The running accounts of this gateway process, by account id: how gateway methods and the agent tool reach
// the runtime of the account they act for. Each entry is independent; nothing else is shared across accounts.
import type { AccountRuntime } from "./account-runtime.js";

export class NoAccountError extends Error {
  override name = "NoAccountError";
  readonly code = "NO_ACCOUNT";
}

export class AccountRuntimes {
  readonly #byId = new Map<string, AccountRuntime>();
  #notifier: ((sessionKey: string, text: string) => void) | null = null;

  /** How to tell an OpenClaw session something (set where the plugin API is at hand: registerFull). */
  setSessionNotifier(notifier: (sessionKey: string, text: string) => void): void {
    this.#notifier = notifier;
  }

  /** Tells a session once (a system event on its next turn); false when no notifier is set or it refused. */
  notifySession(sessionKey: string, text: string): boolean {
    if (!this.#notifier) return false;
    try {
      this.#notifier(sessionKey, text);
      return true;
    } catch {
      return false;
    }
  }

  add(runtime: AccountRuntime): void {
    this.#byId.set(runtime.accountId, runtime);
  }

  /** Removes the entry only if it is still this runtime (a reload may already have added its successor). */
  remove(runtime: AccountRuntime): void {
    if (this.#byId.get(runtime.accountId) === runtime) this.#byId.delete(runtime.accountId);
  }

  list(): AccountRuntime[] {
    return [...this.#byId.values()];
  }

  /**
   * The runtime of `accountId`; without one, the only running account. An unknown id is an error, never
   * silently another account.
   */
  get(accountId?: string | null): AccountRuntime {
    if (accountId) {
      const found = this.#byId.get(accountId);
      if (!found) {
        const running = [...this.#byId.keys()].join(", ") || "none";
        throw new NoAccountError(
          `agent-registry account "${accountId}" is not running (running: ${running})`,
        );
      }
      return found;
    }
    const all = this.list();
    if (all.length === 1) return all[0]!;
    throw new NoAccountError(
      all.length === 0
        ? "no agent-registry account is running; check channels.agent-registry in openclaw.json"
        : `several agent-registry accounts are running (${[...this.#byId.keys()].join(", ")}); pass accountId`,
    );
  }

  /** Selected runtimes: one by id, or all. */
  select(accountId?: string | null): AccountRuntime[] {
    return accountId ? [this.get(accountId)] : this.list();
  }
}

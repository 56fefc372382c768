// The poll status record: phase, consecutive failures and the last summary, as channel status shows them.
import { describe, expect, it } from "vitest";
import { pollMachine } from "../../src/machines/poll.machine.js";
import { toPollStatus } from "../../src/machines/poll.status.js";
import { createHarness } from "./support/index.js";

describe("poll status record", () => {
  it("reports the phase, failures and the last good summary", async () => {
    const h = createHarness({ machine: pollMachine, input: { name: "inbox" }, actors: ["runCycle"] });
    await h.start();
    expect(toPollStatus(h.snapshot())).toEqual({
      phase: "polling",
      consecutiveErrors: 0,
      lastSummary: null,
      lastError: null,
    });
    const summary = {
      trigger: "start" as const,
      dispatched: 2,
      refused: 1,
      deferred: 0,
      peers: { pending: [], trusted: [], at: 5 },
      next: "idle" as const,
    };
    h.fakes.resolve("runCycle", summary);
    await h.flush();
    await h.send({ type: "INBOX.WAKE" });
    await h.advance(1);
    h.fakes.reject("runCycle", { kind: "timeout", operation: "pilot.inbox", message: "timed out" });
    await h.flush();
    expect(toPollStatus(h.snapshot())).toEqual({
      phase: "backoff",
      consecutiveErrors: 1,
      lastSummary: summary,
      lastError: { kind: "timeout", operation: "pilot.inbox", message: "timed out" },
    });
    h.stop();
  });
});

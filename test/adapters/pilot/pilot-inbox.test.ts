// One Pilot inbox cycle at a time on a real directory: what a pass does, what it asks the poll machine to do
// next, and the watcher that wakes the machine (the loop around it is tested in pilot-receiver*.test.ts).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { inboxDir } from "../../../src/adapters/pilot/inbox.js";
import { createPilotInbox, type PilotInbox } from "../../../src/adapters/pilot/pilot-inbox.js";
import { formatAddress } from "../../../src/adapters/pilot/pilotctl.js";
import { createEnvelope, encodeEnvelope } from "../../../src/adapters/transport/envelope.js";
import type { InboundOutcome, InboundSink } from "../../../src/adapters/transport/transport.js";
import { waitFor } from "./helpers.js";

function fileContent(id: string): string {
  const data = encodeEnvelope(createEnvelope({ fromHostname: "alice", body: `body of ${id}`, id }));
  return JSON.stringify({
    type: "TEXT",
    from: formatAddress(0x0001_0002),
    data,
    bytes: Buffer.byteLength(data),
    received_at: new Date().toISOString(),
  });
}

describe("pilot inbox cycle", () => {
  let root: string;
  let home: string;
  let dir: string;
  let inbox: PilotInbox | undefined;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "pilot-inbox-"));
    home = join(root, "home");
    dir = inboxDir(home);
    mkdirSync(dir, { recursive: true });
  });
  afterEach(async () => {
    await inbox?.close();
    inbox = undefined;
    rmSync(root, { recursive: true, force: true });
  });

  function start(outcomes: Record<string, InboundOutcome> = {}): PilotInbox {
    const sink: InboundSink = { process: async (raw) => outcomes[raw.name] ?? "dispatched" };
    inbox = createPilotInbox({ home, sink });
    return inbox;
  }

  it("one pass handles every file and goes idle; a file kept for a retry asks for the quick retry", async () => {
    const i = start({ "TEXT-2.json": "retry", "TEXT-3.json": "refused" });
    for (const n of [1, 2, 3]) writeFileSync(join(dir, `TEXT-${n}.json`), fileContent(`m-${n}`));
    const signal = new AbortController().signal;
    expect(await i.runCycle({ trigger: "start", wait: 0, rescan: false }, signal)).toEqual({
      trigger: "start",
      dispatched: 1,
      refused: 1,
      deferred: 1,
      peers: null,
      next: "retry",
    });
    expect(i.totals()).toMatchObject({ passes: 1, files: 3, dispatched: 1, refused: 1, retried: 1 });
    rmSync(join(dir, "TEXT-2.json"));
    expect(await i.runCycle({ trigger: "deferred", wait: 0, rescan: false }, signal)).toMatchObject({
      dispatched: 0,
      next: "idle",
    });
  });

  it("the watcher wakes on a new file but not on the files a cycle deleted, and stops when told", async () => {
    const i = start();
    let wakes = 0;
    const stop = i.watch(() => {
      wakes++;
    });
    // Arming the watcher wakes once (files may have arrived while it was not watching).
    await waitFor(async () => wakes >= 1, 2_000, 5);
    writeFileSync(join(dir, "TEXT-1.json"), fileContent("m-1"));
    await waitFor(async () => wakes >= 2, 2_000, 5);
    await new Promise((r) => setTimeout(r, 50));
    const beforeCycle = wakes;
    await i.runCycle({ trigger: "wake", wait: 0, rescan: false }, new AbortController().signal);
    await new Promise((r) => setTimeout(r, 100));
    expect(wakes).toBe(beforeCycle);
    stop();
    writeFileSync(join(dir, "TEXT-2.json"), fileContent("m-2"));
    await new Promise((r) => setTimeout(r, 100));
    expect(wakes).toBe(beforeCycle);
  });
});

// A standalone receiver process (real watcher, real pipeline, real files) for crash tests and benches: it
// dispatches by appending `<key>\n` to $RECEIVER_OUT (synchronously, so a SIGKILL cannot lose a line) and
// exits cleanly on SIGTERM. Env: RECEIVER_HOME (Pilot HOME), RECEIVER_STATE (account state dir, whose database
// holds the processed keys), RECEIVER_OUT, RECEIVER_DISPATCH_DELAY_MS (optional: how long each dispatch takes,
// to widen a crash test's window).
import { appendFileSync } from "node:fs";
import { createInboundPipeline } from "../../src/adapters/inbound/pipeline.js";
import { openAccountDb } from "../../src/adapters/state/account-db.js";
import { startPilotReceiver } from "./receivers.js";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const out = required("RECEIVER_OUT");
const delayMs = Number(process.env.RECEIVER_DISPATCH_DELAY_MS ?? "0");
const db = openAccountDb(required("RECEIVER_STATE"));
const pipeline = createInboundPipeline({
  processedKeys: db.processedKeys(),
  policy: { allowFrom: [], blockFrom: [], maxMessageBytes: 65_536, ratePerMinute: 10_000 },
  isTrusted: () => true,
  lookupHostname: async () => null,
  dispatch: async (message) => {
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    appendFileSync(out, `${message.key}\n`);
  },
});
const receiver = startPilotReceiver({ home: required("RECEIVER_HOME"), sink: pipeline });

process.on("SIGTERM", () => {
  void receiver.close().then(() => {
    pipeline.close();
    db.close();
    process.exit(0);
  });
});
process.send?.("ready");
// Keep the process alive: the watcher is not persistent (it never holds a gateway open by itself).
setInterval(() => undefined, 1 << 30);

// withLastKnown: a failing source keeps the last good reading and exposes the error; config source defaults.
import { describe, expect, it } from "vitest";
import { createConfigSource } from "../../../src/adapters/visibility/config.js";
import { withLastKnown } from "../../../src/adapters/visibility/last-known.js";
import {
  VisibilityError,
  type VisibilityReading,
  type VisibilitySource,
} from "../../../src/adapters/visibility/types.js";

/** A source that answers from a script, one step per read. */
function scripted(steps: Array<VisibilityReading | Error>): VisibilitySource {
  let i = 0;
  return {
    read: async () => {
      const step = steps[Math.min(i++, steps.length - 1)]!;
      if (step instanceof Error) throw step;
      return step;
    },
  };
}

const outage = new VisibilityError("Convex at https://x.convex.cloud is unreachable (ECONNREFUSED)", {
  operation: "visibility.convex(installations:get)",
  kind: "unreachable",
});

describe("withLastKnown", () => {
  it("returns the initial value when the first read fails", async () => {
    const source = withLastKnown(scripted([outage]), { discoverable: false });
    await expect(source.read()).resolves.toEqual({ discoverable: false });
    expect(source.lastError).toEqual({
      kind: "unreachable",
      operation: "visibility.convex(installations:get)",
      message: outage.message,
    });
    expect(source.lastSuccessAt).toBeNull();
  });

  it("keeps the last good reading through an outage and clears the error on recovery", async () => {
    const source = withLastKnown(
      scripted([{ discoverable: true, displayName: "Alice" }, outage, { discoverable: false }]),
      { discoverable: false },
    );
    await expect(source.read()).resolves.toEqual({ discoverable: true, displayName: "Alice" });
    expect(source.lastError).toBeNull();
    await expect(source.read()).resolves.toEqual({ discoverable: true, displayName: "Alice" });
    expect(source.lastError?.kind).toBe("unreachable");
    await expect(source.read()).resolves.toEqual({ discoverable: false });
    expect(source.lastError).toBeNull();
    expect(source.lastKnown).toEqual({ discoverable: false });
    expect(source.lastSuccessAt).toEqual(expect.any(String));
  });

  it("turns a non-visibility error into a plain internal error", async () => {
    const source = withLastKnown(scripted([new TypeError("boom")]), { discoverable: true });
    await expect(source.read()).resolves.toEqual({ discoverable: true });
    expect(source.lastError).toEqual({ kind: "internal", operation: "visibility.read", message: "boom" });
  });

  it("hands out copies, so callers cannot change the kept value", async () => {
    const source = withLastKnown(scripted([{ discoverable: true }]), { discoverable: false });
    const reading = await source.read();
    reading.discoverable = false;
    expect(source.lastKnown).toEqual({ discoverable: true });
  });
});

describe("config source", () => {
  it("defaults to discoverable", async () => {
    await expect(createConfigSource().read()).resolves.toEqual({ discoverable: true });
  });

  it("returns the configured value", async () => {
    await expect(createConfigSource({ discoverable: false }).read()).resolves.toEqual({
      discoverable: false,
    });
  });
});

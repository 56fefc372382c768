// The network page's diagrams come from the machines themselves: every state of every machine is drawn, boxes do
// not overlap, arrows join drawn boxes, and a snapshot's value maps to the paths the drawing highlights.
import { describe, expect, it } from "vitest";
import { activePaths, layoutGraph } from "../../../src/adapters/openclaw/network-page/diagram-layout.js";
import { machineLayouts, PAGE_MACHINES } from "../../../src/adapters/openclaw/network-page/routes.js";
import { toDiagramGraph } from "../../../src/machines/diagram.js";

describe("machine layouts", () => {
  it.each(Object.keys(PAGE_MACHINES))("draws every state of the %s machine once", (name) => {
    const graph = toDiagramGraph(PAGE_MACHINES[name]!);
    const layout = machineLayouts()[name]!;
    const drawn = layout.boxes.flatMap((box) => [box.path, ...box.rows.map((row) => row.path)]).sort();
    const states = graph.states
      .filter((s) => s.path !== "")
      .map((s) => s.path)
      .sort();
    expect(drawn).toEqual(states);
    expect(layout.initial).toBe(graph.states.find((s) => s.path === "")!.initial);
  });

  it.each(Object.keys(PAGE_MACHINES))(
    "keeps the boxes of the %s machine apart and inside the picture",
    (name) => {
      const { boxes, width, height, edges } = machineLayouts()[name]!;
      for (const a of boxes) {
        expect(a.x).toBeGreaterThanOrEqual(0);
        expect(a.y).toBeGreaterThanOrEqual(0);
        expect(a.x + a.w).toBeLessThanOrEqual(width);
        expect(a.y + a.h).toBeLessThanOrEqual(height);
        for (const b of boxes) {
          if (a === b) continue;
          const apart = a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
          expect(apart, `${a.path} overlaps ${b.path}`).toBe(true);
        }
      }
      const paths = new Set(boxes.map((box) => box.path));
      for (const edge of edges) {
        expect(paths.has(edge.from) && paths.has(edge.to)).toBe(true);
        expect(edge.d).toMatch(/^[MC0-9., -]+$/);
      }
    },
  );

  it("stays narrow enough for a phone: at most three boxes a row", () => {
    for (const layout of Object.values(machineLayouts())) {
      const rows = new Map<number, number>();
      for (const box of layout.boxes) rows.set(box.y, (rows.get(box.y) ?? 0) + 1);
      expect(Math.max(...rows.values())).toBeLessThanOrEqual(3);
    }
  });

  it("puts the initial state in the first row and what it leads to below", () => {
    const layout = layoutGraph({
      machine: "t",
      states: [
        { path: "", key: "t", parent: null, type: "compound", initial: "a" },
        { path: "a", key: "a", parent: "", type: "atomic", initial: null },
        { path: "b", key: "b", parent: "", type: "compound", initial: "b.x" },
        { path: "b.x", key: "x", parent: "b", type: "atomic", initial: null },
        { path: "c", key: "c", parent: "", type: "final", initial: null },
      ],
      transitions: [
        { from: "a", to: "b", label: "GO" },
        { from: "b.x", to: "c", label: "done work" },
        { from: "b.x", to: "a", label: "BACK" },
        { from: "a", to: "b", label: "AGAIN" },
      ],
    });
    const y = Object.fromEntries(layout.boxes.map((box) => [box.path, box.y]));
    expect(y.a! < y.b! && y.b! < y.c!).toBe(true);
    expect(layout.boxes.find((box) => box.path === "c")!.final).toBe(true);
    expect(layout.edges.find((edge) => edge.from === "a" && edge.to === "b")!.labels).toEqual([
      "GO",
      "AGAIN",
    ]);
    expect(layout.edges.map((edge) => `${edge.from}>${edge.to}`).sort()).toEqual(["a>b", "b>a", "b>c"]);
  });
});

describe("activePaths", () => {
  it("names every active state by its path", () => {
    expect(activePaths("idle")).toEqual(["idle"]);
    expect(activePaths({ pendingApproval: "waiting" })).toEqual([
      "pendingApproval",
      "pendingApproval.waiting",
    ]);
    expect(activePaths({ a: { b: "c" } })).toEqual(["a", "a.b", "a.b.c"]);
    expect(activePaths(undefined)).toEqual([]);
  });
});

// Lays out a machine's states for the network page: top-level states in rows by their distance from the initial
// state (a phone scrolls down, not sideways), each box listing its nested states, arrows between boxes. The
// browser draws the result as SVG; nothing here needs a library or the network. Pure and deterministic, so a
// machine's picture is the same on every load.
import type { AnyStateMachine } from "xstate";
import { type DiagramGraph, type DiagramState, toDiagramGraph } from "../../../machines/diagram.js";

export interface LayoutRow {
  /** The nested state's path (what a snapshot's value names), its label, and its nesting below the box. */
  path: string;
  label: string;
  depth: number;
  y: number;
}

export interface LayoutBox {
  path: string;
  label: string;
  final: boolean;
  x: number;
  y: number;
  w: number;
  h: number;
  rows: LayoutRow[];
}

export interface LayoutEdge {
  from: string;
  to: string;
  /** SVG path data (numbers only). */
  d: string;
  /** The transitions it stands for, e.g. "done register", "HEARTBEAT.FAILED [tooMany]". */
  labels: string[];
}

export interface MachineLayout {
  machine: string;
  width: number;
  height: number;
  initial: string | null;
  boxes: LayoutBox[];
  edges: LayoutEdge[];
  /** Every transition as text, nested ones included: the diagram's text alternative. */
  transitions: Array<{ from: string; to: string; label: string }>;
}

const CHAR_W = 7.2;
const HEAD_H = 26;
const ROW_H = 20;
const PAD = 10;
const GAP_X = 24;
const GAP_Y = 44;
const MARGIN = 12;

function topOf(path: string): string {
  const dot = path.indexOf(".");
  return dot === -1 ? path : path.slice(0, dot);
}

/** Nested states of a top-level state in document order, with their depth below it. */
function nestedRows(graph: DiagramGraph, top: string): Array<{ state: DiagramState; depth: number }> {
  const out: Array<{ state: DiagramState; depth: number }> = [];
  const walk = (parent: string, depth: number) => {
    for (const state of graph.states) {
      if (state.parent !== parent) continue;
      out.push({ state, depth });
      walk(state.path, depth + 1);
    }
  };
  walk(top, 0);
  return out;
}

/** Top-level states in rows: breadth-first from the initial one; states it never reaches go last. */
function ranks(graph: DiagramGraph, tops: string[], initial: string | null): string[][] {
  const next = new Map<string, string[]>(tops.map((top) => [top, []]));
  for (const t of graph.transitions) {
    const from = topOf(t.from);
    const to = topOf(t.to);
    if (from !== to && !next.get(from)?.includes(to)) next.get(from)?.push(to);
  }
  const rankOf = new Map<string, number>();
  const queue: string[] = [];
  const start = initial ?? tops[0];
  if (start !== undefined) {
    rankOf.set(start, 0);
    queue.push(start);
  }
  while (queue.length > 0) {
    const current = queue.shift()!;
    for (const target of next.get(current) ?? []) {
      if (rankOf.has(target)) continue;
      rankOf.set(target, rankOf.get(current)! + 1);
      queue.push(target);
    }
  }
  const last = Math.max(-1, ...rankOf.values()) + 1;
  const rows: string[][] = [];
  for (const top of tops) {
    const rank = rankOf.get(top) ?? last;
    rows[rank] ??= [];
    rows[rank].push(top);
  }
  return rows.filter((row) => row.length > 0);
}

/** Rows wider than `maxPerRow` boxes wrap, so the picture stays narrow enough for a phone. */
function wrap(rows: string[][], maxPerRow: number): string[][] {
  return rows.flatMap((row) => {
    const out: string[][] = [];
    for (let i = 0; i < row.length; i += maxPerRow) out.push(row.slice(i, i + maxPerRow));
    return out;
  });
}

function edgePath(a: LayoutBox, b: LayoutBox, maxX: number): string {
  const round = (n: number) => Math.round(n * 10) / 10;
  if (b.y > a.y + a.h) {
    // Downwards: bottom of the source to the top of the target.
    const x1 = a.x + a.w / 2;
    const y1 = a.y + a.h;
    const x2 = b.x + b.w / 2;
    const y2 = b.y;
    const mid = (y1 + y2) / 2;
    return `M${round(x1)},${round(y1)} C${round(x1)},${round(mid)} ${round(x2)},${round(mid)} ${round(x2)},${round(y2)}`;
  }
  if (a.y === b.y) {
    // Same row: an arc above the boxes.
    const left = a.x < b.x;
    const x1 = left ? a.x + a.w * 0.75 : a.x + a.w * 0.25;
    const x2 = left ? b.x + b.w * 0.25 : b.x + b.w * 0.75;
    const lift = Math.min(GAP_Y - 8, 18 + Math.abs(x2 - x1) / 8);
    return `M${round(x1)},${round(a.y)} C${round(x1)},${round(a.y - lift)} ${round(x2)},${round(b.y - lift)} ${round(x2)},${round(b.y)}`;
  }
  // Upwards: out of the source's right side, around, into the target's right side.
  const x1 = a.x + a.w;
  const y1 = a.y + Math.min(a.h / 2, HEAD_H / 2);
  const x2 = b.x + b.w;
  const y2 = b.y + Math.min(b.h / 2, HEAD_H / 2);
  const out = Math.min(maxX, Math.max(x1, x2) + 30);
  return `M${round(x1)},${round(y1)} C${round(out)},${round(y1)} ${round(out)},${round(y2)} ${round(x2)},${round(y2)}`;
}

export function layoutGraph(graph: DiagramGraph, maxPerRow = 3): MachineLayout {
  const root = graph.states.find((state) => state.parent === null);
  const tops = graph.states.filter((state) => state.parent === "").map((state) => state.path);
  const initial = root?.initial ?? null;
  const rows = wrap(ranks(graph, tops, initial), maxPerRow);

  const sized = new Map<string, LayoutBox>();
  for (const top of tops) {
    const state = graph.states.find((s) => s.path === top)!;
    const nested = nestedRows(graph, top);
    const widest = Math.max(
      state.key.length * CHAR_W,
      ...nested.map(({ state: inner, depth }) => inner.key.length * CHAR_W + 12 + depth * 12),
    );
    const w = Math.max(84, Math.ceil(widest + 2 * PAD));
    const h = HEAD_H + (nested.length > 0 ? nested.length * ROW_H + 6 : 0);
    sized.set(top, {
      path: top,
      label: state.key,
      final: state.type === "final",
      x: 0,
      y: 0,
      w,
      h,
      rows: nested.map(({ state: inner, depth }, index) => ({
        path: inner.path,
        label: inner.key,
        depth,
        y: HEAD_H + index * ROW_H,
      })),
    });
  }

  const rowWidths = rows.map(
    (row) => row.reduce((sum, top) => sum + sized.get(top)!.w, 0) + GAP_X * (row.length - 1),
  );
  const inner = Math.max(0, ...rowWidths);
  // Room on the right for arrows that go back up.
  const width = Math.ceil(inner + 2 * MARGIN + 40);
  let y = MARGIN + 20;
  rows.forEach((row, index) => {
    let x = MARGIN + (inner - rowWidths[index]!) / 2;
    const height = Math.max(...row.map((top) => sized.get(top)!.h));
    for (const top of row) {
      const box = sized.get(top)!;
      box.x = Math.round(x);
      box.y = Math.round(y);
      for (const nested of box.rows) nested.y += box.y;
      x += box.w + GAP_X;
    }
    y += height + GAP_Y;
  });
  const height = Math.ceil(y - GAP_Y + MARGIN);

  const byPair = new Map<string, LayoutEdge>();
  for (const t of graph.transitions) {
    const from = topOf(t.from);
    const to = topOf(t.to);
    if (from === to) continue; // inside one box: listed in the text alternative
    const key = `${from}\u0000${to}`;
    const existing = byPair.get(key);
    if (existing) {
      if (!existing.labels.includes(t.label)) existing.labels.push(t.label);
      continue;
    }
    byPair.set(key, {
      from,
      to,
      d: edgePath(sized.get(from)!, sized.get(to)!, width - 4),
      labels: [t.label],
    });
  }

  return {
    machine: graph.machine,
    width,
    height,
    initial,
    boxes: tops.map((top) => sized.get(top)!),
    edges: [...byPair.values()],
    transitions: graph.transitions.map(({ from, to, label }) => ({ from, to, label })),
  };
}

export function layoutMachine(machine: AnyStateMachine): MachineLayout {
  return layoutGraph(toDiagramGraph(machine));
}

/**
 * The active states of a snapshot's value as the paths the layout uses: `{requested: "waiting"}` ->
 * `["requested", "requested.waiting"]`.
 */
export function activePaths(value: unknown, prefix = ""): string[] {
  if (typeof value === "string") return [prefix ? `${prefix}.${value}` : value];
  if (!value || typeof value !== "object") return [];
  return Object.entries(value as Record<string, unknown>).flatMap(([key, inner]) => {
    const path = prefix ? `${prefix}.${key}` : key;
    return [path, ...activePaths(inner, path)];
  });
}

// Path generation beyond xstate/graph's per-state shortest paths: one path per transition (edge) of the graph,
// each the shortest path to the edge's source followed by the edge. Covering every edge, not just every state,
// is what catches a wrong transition whose target state is also reachable some other, correct way.
import type { AnyStateMachine, EventObject, SnapshotFrom } from "xstate";
import { getAdjacencyMap, getShortestPaths, type TraversalOptions } from "xstate/graph";
import type { AnyPath } from "./replay.js";

export function getTransitionPaths<TMachine extends AnyStateMachine>(
  machine: TMachine,
  options: TraversalOptions<SnapshotFrom<TMachine>, EventObject, unknown> & {
    serializeState: (snapshot: SnapshotFrom<TMachine>) => string;
  },
): AnyPath[] {
  // The graph functions are typed per machine; this helper is generic, so it hands them loose types.
  const logic = machine as AnyStateMachine;
  const traversal = options as unknown as TraversalOptions<
    SnapshotFrom<AnyStateMachine>,
    EventObject,
    unknown
  >;
  const serialize = options.serializeState as (snapshot: unknown) => string;
  const shortest = new Map<string, AnyPath>();
  for (const path of getShortestPaths(logic, traversal)) shortest.set(serialize(path.state), path);
  const adjacency = getAdjacencyMap(logic, traversal);
  const paths: AnyPath[] = [];
  for (const [source, { transitions }] of Object.entries(adjacency)) {
    const base = shortest.get(source);
    if (!base) continue;
    for (const { event, state } of Object.values(transitions) as Array<{
      event: EventObject;
      state: SnapshotFrom<AnyStateMachine>;
    }>) {
      paths.push({ state, weight: base.weight + 1, steps: [...base.steps, { event, state }] });
    }
  }
  return paths;
}

/**
 * Seeded random walks over the adjacency map, each at most `length` steps and ending early in a final state.
 * Unlike shortest and simple paths they take self-loops (a repeated event that changes nothing visible yet),
 * which is where a lost wake-up or a repeated announcement hides.
 */
export function randomWalks<TMachine extends AnyStateMachine>(
  machine: TMachine,
  options: TraversalOptions<SnapshotFrom<TMachine>, EventObject, unknown>,
  walk: { count: number; length: number; seed: number },
): AnyPath[] {
  const adjacency = getAdjacencyMap(
    machine as AnyStateMachine,
    options as unknown as TraversalOptions<SnapshotFrom<AnyStateMachine>, EventObject, unknown>,
  );
  type Snapshot = SnapshotFrom<AnyStateMachine>;
  const serialize = (snapshot: Snapshot) =>
    JSON.stringify({ value: snapshot.value, context: snapshot.context });
  let state = walk.seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 0x1_0000_0000;
  };
  const initial = Object.values(adjacency)[0]!.state as Snapshot;
  return Array.from({ length: walk.count }, () => {
    const steps: AnyPath["steps"] = [{ event: { type: "xstate.init" }, state: initial }];
    let current = initial;
    for (let index = 0; index < walk.length && current.status === "active"; index++) {
      const entry = adjacency[serialize(current) as keyof typeof adjacency];
      const transitions = Object.values(entry?.transitions ?? {}) as Array<{
        event: EventObject;
        state: Snapshot;
      }>;
      if (!transitions.length) break;
      const pick = transitions[Math.floor(next() * transitions.length)]!;
      current = pick.state;
      steps.push({ event: pick.event, state: current });
    }
    return { steps, state: current, weight: steps.length };
  });
}

/** States and edges of a machine's graph, counted independently of the path generators. */
export function graphSize<TMachine extends AnyStateMachine>(
  machine: TMachine,
  options: TraversalOptions<SnapshotFrom<TMachine>, EventObject, unknown>,
): { states: number; edges: number } {
  const adjacency = getAdjacencyMap(
    machine as AnyStateMachine,
    options as unknown as TraversalOptions<SnapshotFrom<AnyStateMachine>, EventObject, unknown>,
  );
  const entries = Object.values(adjacency);
  return {
    states: entries.length,
    edges: entries.reduce((sum, entry) => sum + Object.keys(entry.transitions).length, 0),
  };
}

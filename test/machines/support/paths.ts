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

// Renders a machine's definition as a Mermaid `stateDiagram-v2`, so the docs' pictures come from the code (and a
// snapshot test keeps them from drifting). Pure: no I/O; scripts/diagrams.ts writes the files.
import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from "xstate";

export interface DiagramOptions {
  /** Mermaid layout direction (default "TB"). */
  direction?: "TB" | "LR";
}

/** Mermaid ids may not contain dots or dashes: derive one from the node's path. */
function mermaidId(node: AnyStateNode): string {
  return node.path.map((segment: string) => segment.replace(/[^A-Za-z0-9_]/g, "_")).join("__");
}

function guardLabel(guard: AnyTransitionDefinition["guard"]): string {
  if (guard === undefined) return "";
  if (typeof guard === "string") return ` [${guard}]`;
  if (typeof guard === "object" && guard !== null && "type" in guard) return ` [${String(guard.type)}]`;
  return " [guarded]";
}

/** Human labels for the events XState generates for invokes and delays. */
export function eventLabel(eventType: string): string {
  if (eventType === "") return "always";
  const done = /^xstate\.done\.actor\.(.+)$/.exec(eventType);
  if (done) return `done ${done[1]}`;
  const error = /^xstate\.error\.actor\.(.+)$/.exec(eventType);
  if (error) return `error ${error[1]}`;
  const after = /^xstate\.after\.([^.]+)\./.exec(eventType);
  if (after) return /^\d+$/.test(after[1]!) ? `after ${after[1]} ms` : `after ${after[1]}`;
  return eventType;
}

function transitionsOf(node: AnyStateNode): AnyTransitionDefinition[] {
  const fromEvents = [...node.transitions.values()].flat() as AnyTransitionDefinition[];
  return [...fromEvents, ...((node.always ?? []) as AnyTransitionDefinition[])];
}

function childrenOf(node: AnyStateNode): AnyStateNode[] {
  return Object.values(node.states) as AnyStateNode[];
}

function renderNode(node: AnyStateNode, indent: string, lines: string[]): void {
  const id = mermaidId(node);
  const label = node.key;
  const children = childrenOf(node);
  if (children.length === 0) {
    lines.push(id === label ? `${indent}state ${id}` : `${indent}state "${label}" as ${id}`);
    return;
  }
  lines.push(`${indent}state "${label}" as ${id} {`);
  renderRegion(node, `${indent}  `, lines);
  lines.push(`${indent}}`);
}

/** The inside of a compound or parallel node (or of the root). */
function renderRegion(node: AnyStateNode, indent: string, lines: string[]): void {
  const children = childrenOf(node);
  if (node.type === "parallel") {
    children.forEach((child, index) => {
      if (index > 0) lines.push(`${indent}--`);
      renderNode(child, indent, lines);
    });
    return;
  }
  const initial = node.initial?.target?.[0] as AnyStateNode | undefined;
  if (initial) lines.push(`${indent}[*] --> ${mermaidId(initial)}`);
  for (const child of children) renderNode(child, indent, lines);
}

function renderEdges(node: AnyStateNode, lines: string[]): void {
  for (const transition of transitionsOf(node)) {
    // Targetless transitions only update context; the diagram shows changes of state.
    for (const target of (transition.target ?? []) as AnyStateNode[]) {
      const label = `${eventLabel(transition.eventType)}${guardLabel(transition.guard)}`;
      lines.push(`  ${mermaidId(node)} --> ${mermaidId(target)}: ${label}`);
    }
  }
  if (node.type === "final" && node.parent?.parent === undefined) lines.push(`  ${mermaidId(node)} --> [*]`);
  for (const child of childrenOf(node)) renderEdges(child, lines);
}

/** The Mermaid source (without code fences) of one machine. */
export function toMermaid(machine: AnyStateMachine, options: DiagramOptions = {}): string {
  const root = machine.root as AnyStateNode;
  const lines = ["stateDiagram-v2", `  direction ${options.direction ?? "TB"}`];
  renderRegion(root, "  ", lines);
  for (const child of childrenOf(root)) renderEdges(child, lines);
  return `${lines.join("\n")}\n`;
}

/** An event the root handles in every state without changing state (a child's report, a request for a child). */
export interface RootHandler {
  event: string;
  guard: string;
  actions: string[];
}

function actionName(action: unknown): string {
  if (typeof action === "string") return action;
  if (typeof action === "object" && action !== null && "type" in action) return String(action.type);
  return "(inline)";
}

/** The root's own transitions, as a table the diagram cannot show (they do not change state). */
export function rootHandlers(machine: AnyStateMachine): RootHandler[] {
  const root = machine.root as AnyStateNode;
  return transitionsOf(root).map((transition) => ({
    event: eventLabel(transition.eventType),
    guard: guardLabel(transition.guard).trim(),
    actions: ((transition.actions ?? []) as unknown[]).map(actionName),
  }));
}

/** The root's entry actions (e.g. spawning its children). */
export function rootEntry(machine: AnyStateMachine): string[] {
  return (((machine.root as AnyStateNode).entry ?? []) as unknown[]).map(actionName);
}

/** A state of a machine as plain data: `path` is its id within the machine ("" for the root), dot-joined. */
export interface DiagramState {
  path: string;
  key: string;
  parent: string | null;
  type: "atomic" | "compound" | "parallel" | "final" | "history";
  /** The child entered first (compound states), else null. */
  initial: string | null;
}

export interface DiagramTransition {
  from: string;
  to: string;
  label: string;
}

/** The same walk as the Mermaid rendering, as data: what the network page lays out and draws itself. */
export interface DiagramGraph {
  machine: string;
  states: DiagramState[];
  transitions: DiagramTransition[];
}

const pathOf = (node: AnyStateNode): string => node.path.join(".");

export function toDiagramGraph(machine: AnyStateMachine): DiagramGraph {
  const states: DiagramState[] = [];
  const transitions: DiagramTransition[] = [];
  const visit = (node: AnyStateNode): void => {
    const initial = node.initial?.target?.[0] as AnyStateNode | undefined;
    states.push({
      path: pathOf(node),
      key: node.key,
      parent: node.parent ? pathOf(node.parent) : null,
      type: node.type,
      initial: initial ? pathOf(initial) : null,
    });
    if (node.parent) {
      for (const transition of transitionsOf(node)) {
        for (const target of (transition.target ?? []) as AnyStateNode[]) {
          transitions.push({
            from: pathOf(node),
            to: pathOf(target),
            label: `${eventLabel(transition.eventType)}${guardLabel(transition.guard)}`,
          });
        }
      }
    }
    for (const child of childrenOf(node)) visit(child);
  };
  visit(machine.root as AnyStateNode);
  return { machine: machine.id, states, transitions };
}

// Reading a scripted model's requests the way OpenClaw builds them: which text is the owner's or a peer's (not
// OpenClaw's own injected context), which session a turn runs in, and how a tool call must be shaped.
import { type ChatMessage, type ChatRequest, messageText, type ScriptedReply } from "./model-server.js";

/** OpenClaw appends its own context block as a user message; it is not the owner's or a peer's text. */
export function isInternalContext(message: ChatMessage): boolean {
  return message.role === "user" && messageText(message).startsWith("<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>");
}

/** The last user message that is not OpenClaw's own injected context block. */
export function lastOwnText(request: ChatRequest): string {
  const own = request.messages.filter((m) => m.role === "user" && !isInternalContext(m));
  return messageText(own.at(-1));
}

/** The session a turn ran in, as OpenClaw states it in the prompt (`session=<key>`). */
export function sessionOf(request: ChatRequest | undefined): string | null {
  if (!request) return null;
  for (const message of request.messages) {
    const match = /session=(agent:[^\s|]+)/.exec(messageText(message));
    if (match) return match[1] ?? null;
  }
  return null;
}

/** The tool call as this gateway exposes it: directly, or through OpenClaw's tool-search bridge. */
export function toolCall(request: ChatRequest, args: Record<string, unknown>): ScriptedReply {
  const names = (request.tools ?? []).map((tool) => tool.function.name);
  if (names.includes("agent_network")) return { toolCall: { name: "agent_network", arguments: args } };
  return { toolCall: { name: "tool_call", arguments: { id: "agent_network", args } } };
}

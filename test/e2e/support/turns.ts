// Reading a scripted model's requests the way OpenClaw builds them: which text is the owner's or a peer's (not
// OpenClaw's own injected context), which session a turn runs in, and how a tool call must be shaped.
import type { Gateway } from "./gateway.js";
import { type ChatMessage, type ChatRequest, messageText, type ScriptedReply } from "./model-server.js";

/** openclaw.json settings for an agent that only answers peers: no tool catalog, memory or bootstrap files. */
export const LEAN_AGENT = {
  tools: { profile: "minimal" },
  plugins: { slots: { memory: "none" } },
  agents: { defaults: { skipBootstrap: true } },
};

/**
 * How often each marker (the pattern's first group, a number) is among the peer messages (user role) of a
 * session, as OpenClaw stores it (`chat.history`, paged): the session itself, not only the model's view of it.
 */
export async function sessionMarkers(
  gateway: Pick<Gateway, "call">,
  sessionKey: string,
  pattern: RegExp,
): Promise<Map<number, number>> {
  const counts = new Map<number, number>();
  for (let offset = 0; ; ) {
    const page = await gateway.call<{ messages: ChatMessage[]; hasMore?: boolean; nextOffset?: number }>(
      "chat.history",
      { sessionKey, limit: 1_000, offset, maxChars: 500_000, maxBytes: 64 * 1024 * 1024 },
    );
    for (const message of page.messages) {
      if (message.role !== "user") continue;
      const n = pattern.exec(messageText(message).split("<<< message from").at(-1) ?? "")?.[1];
      if (n !== undefined) counts.set(Number(n), (counts.get(Number(n)) ?? 0) + 1);
    }
    if (!page.hasMore || page.nextOffset === undefined || page.nextOffset <= offset) return counts;
    offset = page.nextOffset;
  }
}

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

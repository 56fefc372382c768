// A scripted OpenAI-compatible model server on 127.0.0.1: deterministic replies and tool calls for the real
// OpenClaw gateway in end-to-end tests and the demo. Supports /v1/models and /v1/chat/completions (SSE and JSON).
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ChatMessage {
  role: string;
  content?: unknown;
  tool_calls?: Array<{ id: string; function: { name: string; arguments: string } }>;
  tool_call_id?: string;
}

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  stream?: boolean;
  tools?: Array<{ type: string; function: { name: string } }>;
}

export type ScriptedReply =
  | { text: string }
  | { toolCall: { name: string; arguments: Record<string, unknown> } };

/** Decides the model's next reply from the whole request; the default echoes a fixed text. */
export type ModelScript = (request: ChatRequest) => ScriptedReply;

export interface ModelServer {
  url: string;
  requests: ChatRequest[];
  setScript(script: ModelScript): void;
  close(): Promise<void>;
}

/** Text of a message whatever its content shape (string or parts). */
export function messageText(message: ChatMessage | undefined): string {
  if (!message) return "";
  const { content } = message;
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((part) => (typeof part?.text === "string" ? part.text : "")).join("");
  }
  return "";
}

export function lastUserText(request: ChatRequest): string {
  const users = request.messages.filter((m) => m.role === "user");
  return messageText(users.at(-1));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
}

function completion(request: ChatRequest, reply: ScriptedReply) {
  const id = `chatcmpl-${randomUUID()}`;
  const message =
    "text" in reply
      ? { role: "assistant", content: reply.text }
      : {
          role: "assistant",
          content: null,
          tool_calls: [
            {
              id: `call_${randomUUID().slice(0, 8)}`,
              type: "function",
              function: { name: reply.toolCall.name, arguments: JSON.stringify(reply.toolCall.arguments) },
            },
          ],
        };
  return { id, message, finish: "text" in reply ? "stop" : "tool_calls", model: request.model };
}

function respondJson(res: ServerResponse, request: ChatRequest, reply: ScriptedReply): void {
  const { id, message, finish, model } = completion(request, reply);
  res.writeHead(200, { "content-type": "application/json" });
  res.end(
    JSON.stringify({
      id,
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model,
      choices: [{ index: 0, message, finish_reason: finish }],
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    }),
  );
}

function respondStream(res: ServerResponse, request: ChatRequest, reply: ScriptedReply): void {
  const { id, message, finish, model } = completion(request, reply);
  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    connection: "keep-alive",
  });
  const created = Math.floor(Date.now() / 1000);
  const chunk = (delta: Record<string, unknown>, finishReason: string | null) =>
    `data: ${JSON.stringify({
      id,
      object: "chat.completion.chunk",
      created,
      model,
      choices: [{ index: 0, delta, finish_reason: finishReason }],
    })}\n\n`;
  res.write(chunk({ role: "assistant" }, null));
  if (message.tool_calls) {
    res.write(chunk({ tool_calls: message.tool_calls.map((call, index) => ({ index, ...call })) }, null));
  } else {
    res.write(chunk({ content: message.content }, null));
  }
  res.write(chunk({}, finish));
  res.write(
    `data: ${JSON.stringify({
      id,
      object: "chat.completion.chunk",
      created,
      model,
      choices: [],
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    })}\n\n`,
  );
  res.end("data: [DONE]\n\n");
}

export async function startModelServer(script?: ModelScript): Promise<ModelServer> {
  let current: ModelScript = script ?? (() => ({ text: "ok" }));
  const requests: ChatRequest[] = [];
  const server: Server = createServer((req, res) => {
    void (async () => {
      try {
        if (req.method === "GET" && req.url?.startsWith("/v1/models")) {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(
            JSON.stringify({ object: "list", data: [{ id: "scripted", object: "model", owned_by: "test" }] }),
          );
          return;
        }
        if (req.method === "POST" && req.url?.startsWith("/v1/chat/completions")) {
          const request = (await readJson(req)) as ChatRequest;
          requests.push(request);
          const reply = current(request);
          if (request.stream) respondStream(res, request, reply);
          else respondJson(res, request, reply);
          return;
        }
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: `no route ${req.method} ${req.url}` } }));
      } catch (error) {
        res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: String(error) } }));
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    setScript(next) {
      current = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// The tool's parameter schema against OpenClaw's own argument validator (run before execute) and its provider
// schema normalization: what the model may send must pass the host and reach our zod checks, whose messages say
// what to pass.

import { describe, expect, it } from "vitest";
import { normalizeToolParameterSchema } from "../../../openclaw-host/node_modules/@openclaw/ai/dist/internal/tool-schema.mjs";
import { validateToolArguments } from "../../../openclaw-host/node_modules/@openclaw/ai/dist/validation.mjs";
import {
  ACTION_EXAMPLES,
  agentNetworkParamsJsonSchema,
  agentNetworkParamsSchema,
} from "../../../src/adapters/openclaw/tool.schema.js";

const parameters = agentNetworkParamsJsonSchema();
const tool = { name: "agent_network", description: "test", parameters } as unknown as Parameters<
  typeof validateToolArguments
>[0];

function hostAccepts(args: Record<string, unknown>): unknown {
  return validateToolArguments(tool, {
    type: "toolCall",
    id: "c1",
    name: "agent_network",
    arguments: args,
  } as never);
}

describe("agent_network schema in OpenClaw", () => {
  it("the host accepts every example call, and zod accepts what the host passes on", () => {
    for (const example of Object.values(ACTION_EXAMPLES)) {
      const passed = hostAccepts(example);
      expect(agentNetworkParamsSchema.safeParse(passed).success).toBe(true);
    }
  });

  it("the host lets through what we normalize ourselves (mixed-case hostname, string limit)", () => {
    const passed = hostAccepts({ action: "get_agent", hostname: " Alice " });
    expect(agentNetworkParamsSchema.parse(passed)).toMatchObject({ hostname: "alice" });
    const limit = hostAccepts({ action: "search", limit: "5" });
    expect(agentNetworkParamsSchema.parse(limit)).toMatchObject({ limit: 5 });
  });

  it("the host passes a call missing a per-action field on to us, so our message says what to pass", () => {
    expect(() => hostAccepts({ action: "contact", hostname: "bob" })).not.toThrow();
  });

  it("the host refuses an unknown action before execute", () => {
    expect(() => hostAccepts({ action: "delete_everything" })).toThrow(/action/);
  });

  it("stays an object schema with the action enum after provider normalization", () => {
    for (const modelProvider of ["openai", "anthropic", "google", "deepseek"]) {
      const normalized = normalizeToolParameterSchema(parameters, { modelProvider, modelId: "m" }) as {
        type?: string;
        properties?: Record<string, { enum?: string[] }>;
      };
      expect(normalized.type).toBe("object");
      expect(normalized.properties?.action?.enum).toContain("contact");
    }
  });
});

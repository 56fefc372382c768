// The host interface as the plugin sees it, reduced to what registration uses: records registered gateway methods
// and tools so tests can call them the way the gateway would (params in, respond out).
import type { OpenClawPluginApi } from "openclaw/plugin-sdk/channel-core";

type GatewayHandler = Parameters<OpenClawPluginApi["registerGatewayMethod"]>[1];
type ToolRegistration = Parameters<OpenClawPluginApi["registerTool"]>;

export interface Reply {
  ok: boolean;
  payload: unknown;
  error: { code: string; message: string; details?: unknown } | undefined;
}

export interface FakeApi {
  readonly methods: Map<string, { handler: GatewayHandler; scope: string | undefined }>;
  readonly tools: ToolRegistration[];
  readonly debug: string[];
  api: Pick<OpenClawPluginApi, "registerGatewayMethod" | "registerTool" | "logger">;
  call(method: string, params?: Record<string, unknown>): Promise<Reply>;
}

export function createFakeApi(options: { rejectSlashNames?: boolean } = {}): FakeApi {
  const methods: FakeApi["methods"] = new Map();
  const tools: ToolRegistration[] = [];
  const debug: string[] = [];
  const logger = {
    info: () => {},
    warn: () => {},
    error: () => {},
    debug: (message: string) => {
      debug.push(message);
    },
  };
  const api: FakeApi["api"] = {
    registerGatewayMethod(name, handler, opts) {
      if (options.rejectSlashNames && name.includes("/")) throw new Error(`invalid method name ${name}`);
      methods.set(name, { handler, scope: opts?.scope });
    },
    registerTool(...args) {
      tools.push(args);
    },
    logger: logger as unknown as OpenClawPluginApi["logger"],
  };
  return {
    methods,
    tools,
    debug,
    api,
    async call(method, params = {}) {
      const entry = methods.get(method);
      if (!entry) throw new Error(`method ${method} is not registered`);
      let reply: Reply | undefined;
      await entry.handler({
        params,
        respond: (ok: boolean, payload?: unknown, error?: unknown) => {
          reply = { ok, payload, error: error as Reply["error"] };
        },
      } as unknown as Parameters<GatewayHandler>[0]);
      if (!reply) throw new Error(`${method} did not respond`);
      return reply;
    },
  };
}

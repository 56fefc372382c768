// The configuration of `channels.agent-registry`: one zod schema is the source of the TypeScript types, the
// manifest's JSON Schema (scripts/manifest.ts) and the README's configuration reference.
import { z } from "zod";
import { scheduleSchema } from "./adapters/visibility/schemas.js";

export const CHANNEL_ID = "agent-registry";
export const DEFAULT_ACCOUNT_ID = "default";
export const DEFAULT_REGISTRY_URL = "http://127.0.0.1:8001";

/** Pilot's hostname rules, also the registry's. */
export const HOSTNAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export const hostnameSchema = z
  .string()
  .regex(
    HOSTNAME_PATTERN,
    "hostname: lowercase letters, digits and '-', 1-63 characters, not starting or ending with '-'",
  )
  .describe("Pilot hostname of this agent, also its unique name in the registry");

const capabilitySchema = z.string().trim().min(1).max(64);

export const visibilitySchema = z
  .object({
    source: z
      .enum(["config", "convex", "schedule"])
      .default("config")
      .describe("Where 'discoverable' comes from: this config, Convex installation metadata, or a schedule"),
    convexUrl: z
      .string()
      .url()
      .optional()
      .describe("Convex deployment URL (source convex); env BUTLEY_CONVEX_URL"),
    refreshSeconds: z
      .number()
      .int()
      .min(5)
      .max(86_400)
      .default(300)
      .describe("How often a remote visibility source is read again"),
    schedule: scheduleSchema.optional(),
  })
  .strict();

/** A Pilot registry or beacon address as the daemon's flags take it: host:port (a name, IPv4 or [IPv6]). */
const PILOT_ENDPOINT_RE =
  /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?):(\d{1,5})$/;
const pilotEndpoint = z.string().refine((value) => {
  const port = PILOT_ENDPOINT_RE.exec(value)?.[1];
  return port !== undefined && Number(port) >= 1 && Number(port) <= 65_535;
}, "expected host:port (e.g. 127.0.0.1:9000 or registry.example.org:9000), as Pilot's daemon flags take it");

export const pilotSchema = z
  .object({
    pilotctl: z.string().min(1).default("pilotctl").describe("Path or name of the pilotctl binary"),
    home: z
      .string()
      .min(1)
      .optional()
      .describe("HOME shared by pilotctl and the daemon (inbox: $HOME/.pilot/inbox)"),
    socket: z.string().min(1).optional().describe("PILOT_SOCKET of this account's daemon"),
    manageDaemon: z
      .boolean()
      .default(false)
      .describe("Start and supervise the daemon; when false only observe it and never stop it"),
    pollIntervalSeconds: z
      .number()
      .int()
      .min(1)
      .max(3600)
      .default(15)
      .describe("Reconciliation interval (inbox file events wake the loop at once)"),
    sendTimeoutMs: z.number().int().min(100).max(120_000).default(10_000),
    registry: pilotEndpoint
      .optional()
      .describe(
        "Pilot registry (host:port) given to a managed daemon (`daemon start --registry`) and to pilotctl; unset: the daemon's own choice (its environment, then ~/.pilot/config.json, then Pilot's public registry)",
      ),
    beacon: pilotEndpoint
      .optional()
      .describe(
        "Pilot beacon (host:port) for a managed daemon (`daemon start --beacon`); unset: the daemon's default 127.0.0.1:9001",
      ),
  })
  .strict();

export const handshakeSchema = z
  .object({
    approver: z
      .enum(["owner", "agent"])
      .default("owner")
      .describe("Who approves incoming handshakes: the operator (owner) or the agent itself"),
    introduction: z.string().max(2000).optional().describe("Default introduction sent with handshakes"),
  })
  .strict();

export const outboundSchema = z
  .object({
    maxQueuedPerPeer: z
      .number()
      .int()
      .min(1)
      .max(10_000)
      .default(100)
      .describe("Undelivered messages to one peer before a send is refused (outbox full)"),
    maxQueued: z
      .number()
      .int()
      .min(1)
      .max(100_000)
      .default(1000)
      .describe("Undelivered messages in all before a send is refused (outbox full)"),
    receiptTimeoutSeconds: z
      .number()
      .int()
      .min(1)
      .max(86_400)
      .default(120)
      .describe("Wait for the peer's receipt before resending with the same id (doubling per resend)"),
    maxResends: z
      .number()
      .int()
      .min(0)
      .max(20)
      .default(4)
      .describe("Resends without a receipt; then the message stays sent (the peer may not send receipts)"),
    notifyAfterMinutes: z
      .number()
      .int()
      .min(1)
      .max(10_080)
      .default(10)
      .describe("Tell the writing session once when its message is still undelivered after this long"),
    expireAfterHours: z
      .number()
      .int()
      .min(1)
      .max(720)
      .default(168)
      .describe("A message the transport never took fails after this long"),
  })
  .strict();

export const inboundSchema = z
  .object({
    allowFrom: z
      .array(z.string())
      .default([])
      .describe("Only these peers (hostnames) may write; empty = any trusted"),
    blockFrom: z
      .array(z.string())
      .default([])
      .describe("Peers (hostnames) whose messages are always refused"),
    maxMessageBytes: z.number().int().min(1).max(1_048_576).default(65_536),
    ratePerMinute: z.number().int().min(1).max(10_000).default(30).describe("Per-peer inbound rate limit"),
    autoReplyBudget: z
      .number()
      .int()
      .min(0)
      .max(1000)
      .default(5)
      .describe(
        "Agent replies to one peer without an owner-initiated message in between (stops agent ping-pong)",
      ),
    maxMessageAgeMinutes: z
      .number()
      .int()
      .min(5)
      .max(10_080)
      .default(60)
      .describe(
        "Signed messages older than this are refused as replays (the sender's outbox resends them signed afresh)",
      ),
  })
  .strict();

/**
 * The fields of a nested settings object as overrides: every field optional and WITHOUT its default, so a key the
 * user left out stays out. zod's partial() would fill the defaults in, and an account's `pilot: {pilotctl}` would
 * then reset the channel-level `pilot.manageDaemon` to its default instead of inheriting it. Defaults are applied
 * once, after channel and account values are merged (resolveOne).
 */
function overridesOf<T extends z.ZodRawShape>(schema: z.ZodObject<T>): ReturnType<z.ZodObject<T>["partial"]> {
  const shape: Record<string, z.ZodType> = {};
  for (const [key, field] of Object.entries(schema.shape)) {
    if (!(field instanceof z.ZodDefault)) {
      shape[key] = (field as z.ZodType).optional();
      continue;
    }
    // The default stays documented (manifest JSON Schema, docs) without being applied at this level.
    const meta: Record<string, unknown> = { default: field.def.defaultValue };
    if (field.description) meta.description = field.description;
    shape[key] = (field.unwrap() as z.ZodType).optional().meta(meta);
  }
  return z.object(shape).strict() as unknown as ReturnType<z.ZodObject<T>["partial"]>;
}

const registryUrlSchema = z
  .string()
  .url()
  .refine((url) => {
    const parsed = URL.parse(url);
    return parsed === null || (parsed.username === "" && parsed.password === "");
  }, "no user name or password in the URL (requests cannot send them); set registryApiKey for the deployment key");

/** Most registry URLs one account lists: replicas behind one name are a load balancer's job, not this list's. */
export const REGISTRY_URLS_MAX = 8;
/** While on a fallback registry URL, how often the first (preferred) one is asked whether it answers again. */
export const PREFERRED_RETRY_MINUTES = 5;

/** `https://host/prefix/` and `https://host/prefix` are one registry. */
function trimBase(url: string): string {
  return url.trim().replace(/\/+$/, "");
}

const registryUrlListSchema = z
  .array(registryUrlSchema)
  .min(1)
  .max(REGISTRY_URLS_MAX)
  .refine((urls) => new Set(urls.map(trimBase)).size === urls.length, "each registry URL once");

/** Fields an account may set; the same fields at the top level are defaults for every account. */
const accountFields = {
  enabled: z.boolean().optional(),
  name: z.string().optional().describe("Label of the account in status output"),
  hostname: hostnameSchema.optional(),
  displayName: z.string().max(200).optional(),
  description: z.string().max(2000).optional(),
  capabilities: z.array(capabilitySchema).max(50).optional(),
  registryUrl: z
    .union([registryUrlSchema, registryUrlListSchema])
    .optional()
    .describe(
      `Agent Registry base URL (default ${DEFAULT_REGISTRY_URL}), or a list of base URLs of replicas of one registry (one database) for failover, preferred first: requests stay on the URL that last answered and go back to the first once it answers again (checked every ${PREFERRED_RETRY_MINUTES} min). The env takes several separated by commas`,
    ),
  registryApiKey: z
    .string()
    .min(1)
    .optional()
    .describe("Deployment key (X-Registry-Key); env AGENT_REGISTRY_API_KEY"),
  installationId: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe(
      "Stable identity in the registry; env BUTLEY_INSTALLATION_ID or INSTALLATION_ID, else generated once",
    ),
  ownerName: z
    .string()
    .max(200)
    .optional()
    .describe("The human this assistant works for (used in introductions)"),
  discoverable: z.boolean().optional(),
  visibility: visibilitySchema.optional(),
  heartbeatIntervalSeconds: z.number().int().min(5).max(3600).optional(),
  maxHeartbeatFailures: z.number().int().min(1).max(100).optional(),
  transport: z.enum(["pilot", "relay", "auto", "none"]).optional(),
  pilot: overridesOf(pilotSchema).optional(),
  handshake: overridesOf(handshakeSchema).optional(),
  inbound: overridesOf(inboundSchema).optional(),
  outbound: overridesOf(outboundSchema).optional(),
};

export const accountConfigSchema = z.object(accountFields).strict();
export type AccountConfig = z.infer<typeof accountConfigSchema>;

const arrayAccountSchema = accountConfigSchema.extend({ id: z.string().min(1) }).strict();

export const channelConfigSchema = z
  .object({
    ...accountFields,
    accounts: z
      .union([z.record(z.string().min(1), accountConfigSchema), z.array(arrayAccountSchema)])
      .optional()
      .describe("Accounts by id; the original plugin's array form [{id, ...}] is accepted too"),
  })
  .strict();
export type ChannelConfig = z.infer<typeof channelConfigSchema>;

/** An account with every default and env fallback applied: what the runtime works with. */
export interface ResolvedAccount {
  accountId: string;
  enabled: boolean;
  name: string;
  hostname: string | null;
  displayName: string | null;
  description: string | null;
  capabilities: string[];
  /** The preferred (first) registry URL: the key the account's registration is saved under. */
  registryUrl: string;
  /** Every registry URL in failover order, the preferred first (one entry without failover). */
  registryUrls: string[];
  registryApiKey: string | null;
  installationId: string | null;
  ownerName: string | null;
  discoverable: boolean;
  visibility: z.infer<typeof visibilitySchema>;
  heartbeatIntervalSeconds: number;
  maxHeartbeatFailures: number;
  transport: "pilot" | "relay" | "auto" | "none";
  pilot: z.infer<typeof pilotSchema>;
  handshake: z.infer<typeof handshakeSchema>;
  inbound: z.infer<typeof inboundSchema>;
  outbound: z.infer<typeof outboundSchema>;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

type Env = Record<string, string | undefined>;

function envValue(env: Env, ...names: string[]): string | undefined {
  for (const name of names) {
    const value = env[name]?.trim();
    if (value) return value;
  }
  return undefined;
}

/** Parses `channels.agent-registry`; errors name the field and say what to fix. */
export function parseChannelConfig(raw: unknown): ChannelConfig {
  const result = channelConfigSchema.safeParse(raw ?? {});
  if (!result.success) {
    const problems = result.error.issues
      .map((issue) => `channels.${CHANNEL_ID}.${issue.path.join(".") || "(root)"}: ${issue.message}`)
      .join("; ");
    throw new ConfigError(`Invalid agent-registry configuration: ${problems}`);
  }
  return result.data;
}

function accountEntries(config: ChannelConfig): Array<[string, AccountConfig]> {
  const { accounts } = config;
  if (Array.isArray(accounts)) {
    return accounts.map(({ id, ...rest }) => [id, rest]);
  }
  if (accounts && Object.keys(accounts).length > 0) return Object.entries(accounts);
  // No accounts: the top-level fields describe one default account.
  return config.hostname ? [[DEFAULT_ACCOUNT_ID, {}]] : [];
}

export function listAccountIds(raw: unknown): string[] {
  return accountEntries(parseChannelConfig(raw)).map(([id]) => id);
}

/**
 * The configured URL or URLs, else the env's (several separated by commas), else the default: without trailing
 * slashes, each once, in order.
 */
function resolveRegistryUrls(
  configured: string | string[] | undefined,
  fromEnv: string | undefined,
): string[] {
  const listed =
    configured === undefined
      ? (fromEnv?.split(",") ?? [DEFAULT_REGISTRY_URL])
      : Array.isArray(configured)
        ? configured
        : [configured];
  const urls = [...new Set(listed.map(trimBase).filter((url) => url.length > 0))];
  return urls.length > 0 ? urls : [DEFAULT_REGISTRY_URL];
}

function resolveOne(
  accountId: string,
  defaults: ChannelConfig,
  own: AccountConfig,
  env: Env,
): ResolvedAccount {
  const pick = <K extends keyof AccountConfig>(key: K): AccountConfig[K] => own[key] ?? defaults[key];
  const visibility = visibilitySchema.parse({ ...defaults.visibility, ...own.visibility });
  if (visibility.source === "convex" && !visibility.convexUrl) {
    const convexUrl = envValue(env, "BUTLEY_CONVEX_URL");
    if (!convexUrl) {
      throw new ConfigError(
        `Account "${accountId}": visibility.source is "convex" but no convexUrl is set; set ` +
          `channels.${CHANNEL_ID}.visibility.convexUrl or env BUTLEY_CONVEX_URL`,
      );
    }
    visibility.convexUrl = convexUrl;
  }
  if (visibility.source === "schedule" && !visibility.schedule) {
    throw new ConfigError(
      `Account "${accountId}": visibility.source is "schedule" but visibility.schedule is missing`,
    );
  }
  const registryUrls = resolveRegistryUrls(pick("registryUrl"), envValue(env, "AGENT_REGISTRY_URL"));
  return {
    accountId,
    enabled: pick("enabled") ?? true,
    name: own.name ?? accountId,
    hostname: pick("hostname") ?? null,
    displayName: pick("displayName") ?? null,
    description: pick("description") ?? null,
    capabilities: [...new Set((pick("capabilities") ?? []).map((c) => c.toLowerCase()))],
    registryUrl: registryUrls[0]!,
    registryUrls,
    registryApiKey: pick("registryApiKey") ?? envValue(env, "AGENT_REGISTRY_API_KEY") ?? null,
    installationId:
      pick("installationId") ?? envValue(env, "BUTLEY_INSTALLATION_ID", "INSTALLATION_ID") ?? null,
    ownerName: pick("ownerName") ?? null,
    discoverable: pick("discoverable") ?? true,
    visibility,
    heartbeatIntervalSeconds: pick("heartbeatIntervalSeconds") ?? 60,
    maxHeartbeatFailures: pick("maxHeartbeatFailures") ?? 3,
    transport: pick("transport") ?? "pilot",
    pilot: pilotSchema.parse({ ...defaults.pilot, ...own.pilot }),
    handshake: handshakeSchema.parse({ ...defaults.handshake, ...own.handshake }),
    inbound: inboundSchema.parse({ ...defaults.inbound, ...own.inbound }),
    outbound: outboundSchema.parse({ ...defaults.outbound, ...own.outbound }),
  };
}

/** Every configured account, resolved. */
export function resolveAccounts(raw: unknown, env: Env = process.env): ResolvedAccount[] {
  const config = parseChannelConfig(raw);
  return accountEntries(config).map(([id, own]) => resolveOne(id, config, own, env));
}

/**
 * One account by id. An unknown id is an error, never silently the first account: acting as the wrong identity
 * is worse than failing.
 */
export function resolveAccount(raw: unknown, accountId: string | null | undefined, env: Env = process.env) {
  const accounts = resolveAccounts(raw, env);
  if (!accountId) {
    if (accounts.length === 1) return accounts[0]!;
    const fallback = accounts.find((a) => a.accountId === DEFAULT_ACCOUNT_ID);
    if (fallback) return fallback;
    throw new ConfigError(
      accounts.length === 0
        ? `No agent-registry account is configured; add channels.${CHANNEL_ID}.accounts.<id> with a hostname`
        : `Several agent-registry accounts exist (${accounts.map((a) => a.accountId).join(", ")}); pass accountId`,
    );
  }
  const found = accounts.find((a) => a.accountId === accountId);
  if (!found) {
    throw new ConfigError(
      `Unknown agent-registry account "${accountId}"; configured: ${accounts.map((a) => a.accountId).join(", ") || "none"}`,
    );
  }
  return found;
}

/** JSON Schema of the channel config, for the manifest (zod is the single source). */
export function channelConfigJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(channelConfigSchema, { io: "input", unrepresentable: "any" }) as Record<
    string,
    unknown
  >;
}

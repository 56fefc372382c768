// Renders the configuration reference (docs/configuration.md) from the zod schema of channels.agent-registry, so
// the docs cannot drift from the code. Pure: scripts/config-docs.ts writes the file, test/docs checks it is fresh.
// Types, limits and descriptions come from the JSON Schema zod emits; defaults that live in the resolver rather
// than in the schema (enabled, transport, heartbeat...) come from resolving a minimal config with an empty env.
import { CHANNEL_ID, channelConfigJsonSchema, resolveAccounts } from "./config.js";

/** Environment variables the resolver reads when a field is not configured (checked against it by tests). */
export const ENV_FALLBACKS: Readonly<Record<string, readonly string[]>> = {
  registryUrl: ["AGENT_REGISTRY_URL"],
  registryApiKey: ["AGENT_REGISTRY_API_KEY"],
  installationId: ["BUTLEY_INSTALLATION_ID", "INSTALLATION_ID"],
  "visibility.convexUrl": ["BUTLEY_CONVEX_URL"],
};

/**
 * Descriptions of fields whose schema has none. The schema's own `.describe()` always wins; a test fails when a
 * field has neither, and when an entry here names a field that no longer exists.
 */
export const FALLBACK_DESCRIPTIONS: Readonly<Record<string, string>> = {
  enabled: "Start this account; `false` keeps it configured but OpenClaw does not start it",
  displayName: "Name shown to other agents in the registry",
  description: "What this assistant does, shown in search results",
  capabilities: "Tags other agents search by (stored lowercase, duplicates removed)",
  discoverable:
    "Listed in the registry (visibility source `config`); `false` keeps the channel up but private",
  heartbeatIntervalSeconds: "Seconds between heartbeats while online (never overlapping)",
  maxHeartbeatFailures: "Consecutive failed heartbeats before the account registers again",
  transport:
    "How messages travel: Pilot Protocol, the registry's HTTP relay, `auto` (Pilot first, the relay when Pilot to a peer fails or it has no Pilot node), or none (discovery only)",
  "pilot.sendTimeoutMs": "Timeout of one `pilotctl send-message`",
  "inbound.maxMessageBytes": "Larger inbound messages are refused",
  "visibility.schedule.windows": "Weekly windows in which the agent is discoverable",
  "visibility.schedule.windows[].start": "Start of the window, HH:MM (24 h)",
  "visibility.schedule.windows[].end": "End of the window, HH:MM (24 h)",
};

type Json = Record<string, unknown>;

export interface ConfigFieldDoc {
  /** Dotted path below `channels.agent-registry` (or below `accounts.<id>`), `[]` for list items. */
  path: string;
  type: string;
  /** Markdown: a code span, or "—" when the field has no default. */
  defaultValue: string;
  description: string;
  env: readonly string[];
}

const PROBE_ACCOUNT_ID = "probe-account-id";
const PROBE_HOSTNAME = "probe-hostname";

function isJson(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function code(text: string): string {
  return `\`${text}\``;
}

function range(min: unknown, max: unknown): string {
  if (typeof min === "number" && typeof max === "number") return `${min}–${max}`;
  if (typeof min === "number") return `≥ ${min}`;
  if (typeof max === "number") return `≤ ${max}`;
  return "";
}

/** A short human type from a JSON Schema node: `integer 5–3600`, `one of a, b`, `list of string (≤ 50)`. */
export function describeType(node: Json): string {
  if (Array.isArray(node.enum)) return `one of ${node.enum.map((v) => code(String(v))).join(", ")}`;
  if (Array.isArray(node.anyOf)) {
    return node.anyOf
      .filter(isJson)
      .map((variant) => describeType(variant))
      .join(" or ");
  }
  switch (node.type) {
    case "integer":
    case "number": {
      const bounds = range(node.minimum, node.maximum);
      return bounds ? `${node.type} ${bounds}` : String(node.type);
    }
    case "string": {
      if (node.format === "uri") return "URL";
      if (typeof node.pattern === "string") return `string matching ${code(node.pattern)}`;
      const length = range(node.minLength, node.maxLength);
      return length && length !== "≥ 1" ? `string (${length} chars)` : "string";
    }
    case "array": {
      const items = isJson(node.items) ? describeType(node.items) : "any";
      const count = range(node.minItems, node.maxItems);
      return `list of ${items}${count ? `, ${count} items` : ""}`;
    }
    case "object":
      if (isJson(node.additionalProperties)) return "map of id → object";
      return "object";
    case "boolean":
      return "boolean";
    default:
      return "any";
  }
}

function formatDefault(value: unknown): string {
  if (value === undefined || value === null) return "—";
  return code(JSON.stringify(value));
}

/** Defaults the resolver applies: a minimal account resolved with no environment. */
function resolvedDefaults(): Json {
  const [account] = resolveAccounts({ accounts: { [PROBE_ACCOUNT_ID]: { hostname: PROBE_HOSTNAME } } }, {});
  return account as unknown as Json;
}

function lookup(root: Json, path: string): unknown {
  let current: unknown = root;
  for (const part of path.split(".")) {
    if (!isJson(current) || part.endsWith("[]")) return undefined;
    current = current[part];
  }
  return current;
}

function defaultOf(node: Json, path: string, resolved: Json): string {
  if ("default" in node) return formatDefault(node.default);
  const value = lookup(resolved, path);
  if (value === PROBE_ACCOUNT_ID) return "the account id";
  if (value === PROBE_HOSTNAME) return "—";
  if (path === "installationId" && value === null) return "generated once, then kept";
  return formatDefault(value);
}

function walk(properties: Json, prefix: string, resolved: Json, out: ConfigFieldDoc[]): void {
  for (const [name, raw] of Object.entries(properties)) {
    if (!isJson(raw)) continue;
    const path = `${prefix}${name}`;
    const own = typeof raw.description === "string" ? raw.description : undefined;
    const description = own ?? FALLBACK_DESCRIPTIONS[path] ?? "";
    const nested = isJson(raw.properties) ? raw.properties : undefined;
    const items = isJson(raw.items) && isJson(raw.items.properties) ? raw.items.properties : undefined;
    if (path === "accounts") {
      out.push({
        path,
        type: "map of account id → account (every field above), or a list of accounts with `id`",
        defaultValue: "—",
        description,
        env: [],
      });
      continue;
    }
    // A plain container (pilot, inbound...) is documented by its fields; one with a description gets a row too.
    if (!nested || description) {
      out.push({
        path,
        type: describeType(raw),
        defaultValue: nested ? "—" : defaultOf(raw, path, resolved),
        description,
        env: ENV_FALLBACKS[path] ?? [],
      });
    }
    if (nested) walk(nested, `${path}.`, resolved, out);
    if (items) walk(items, `${path}[].`, resolved, out);
  }
}

/** Every documented field of `channels.agent-registry`, in schema order. */
export function configFieldDocs(): ConfigFieldDoc[] {
  const schema = channelConfigJsonSchema();
  if (!isJson(schema.properties)) throw new Error("config-docs: the channel schema has no properties");
  const out: ConfigFieldDoc[] = [];
  walk(schema.properties, "", resolvedDefaults(), out);
  return out;
}

function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

export function renderConfigDocs(): string {
  const rows = configFieldDocs().map((field) => {
    const env = field.env.length > 0 ? field.env.map(code).join(", ") : "";
    return `| ${code(field.path)} | ${cell(field.type)} | ${cell(field.defaultValue)} | ${cell(field.description)} | ${env} |`;
  });
  return [
    "# Configuration reference",
    "",
    "<!-- Generated from src/config.ts by `npm run docs` (scripts/config-docs.ts). Do not edit by hand. -->",
    "",
    `Settings live under \`channels.${CHANNEL_ID}\` in the OpenClaw config. Every field except \`accounts\` can be`,
    "set at the top level, where it is the default for every account, or per account under",
    "`accounts.<id>`. The nested objects (`visibility`, `pilot`, `handshake`, `inbound`, `outbound`) are merged field by field",
    "(account over top level). Without `accounts`, a top-level `hostname` makes one account with id `default`.",
    "Unknown keys are rejected, with a message naming the field.",
    "",
    "An environment variable is read only when the field is set neither on the account nor at the top level.",
    "",
    "| Field | Type | Default | Description | Env fallback |",
    "|---|---|---|---|---|",
    ...rows,
    "",
  ].join("\n");
}

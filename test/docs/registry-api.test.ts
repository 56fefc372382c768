// Keeps docs/registry-api.md honest: its route tables list exactly the routes the reference server has, and the
// limits it quotes are the ones in the code.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { MAX_JWS_LENGTH } from "../../src/identity/jws.js";
import { PROOF_WINDOW_MS } from "../../src/identity/request-proof.js";
import { InboxWaiters } from "../../src/registry-server/inbox-waiters.js";
import { NONCE_CACHE_SIZE } from "../../src/registry-server/proofs.js";
import { buildRoutes } from "../../src/registry-server/routes.js";
import {
  INBOX_DEFAULT_MAX_BYTES,
  INBOX_MAX_BYTES,
  INBOX_MAX_LIMIT,
  INBOX_MIN_MAX_BYTES,
  LOOKUP_MAX_IDS,
  LOOKUP_MAX_PER_NODE_ID,
  LOOKUP_MAX_REQUEST_BYTES,
  MAX_MESSAGE_BODY_BYTES,
  MAX_QUERY_TERMS,
  TRUST_PAGE_DEFAULT_LIMIT,
  TRUST_PAGE_MAX_LIMIT,
} from "../../src/registry-server/schemas.js";
import {
  DEFAULT_HEADERS_TIMEOUT_MS,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_REQUEST_TIMEOUT_MS,
} from "../../src/registry-server/server.js";
import {
  DEFAULT_INBOX_MAX_BYTES,
  DEFAULT_INBOX_MAX_MESSAGES,
  DEFAULT_SEND_BURST,
  DEFAULT_SEND_RATE_PER_MINUTE,
  type RegistryService,
} from "../../src/registry-server/service.js";

const doc = readFileSync(fileURLToPath(new URL("../../docs/registry-api.md", import.meta.url)), "utf8");

/** `METHOD /path` of every table row whose first cell is a route. */
function documentedRoutes(): string[] {
  return doc
    .split("\n")
    .map((line) => /^\| `(GET|POST|PATCH|DELETE|PUT) (\/[^`]*)`/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => `${m[1]} ${m[2]}`);
}

const KIB = 1024;
const MIB = 1024 * 1024;

describe("docs/registry-api.md", () => {
  it("lists exactly the server's routes, each once", () => {
    // The routes are only listed, never called: the service is not needed.
    const served = buildRoutes({} as RegistryService, new InboxWaiters()).list();
    const documented = documentedRoutes();
    expect(new Set(documented).size).toBe(documented.length);
    expect([...documented].sort()).toEqual([...served].sort());
  });

  it("quotes the limits the code enforces", () => {
    expect(MAX_MESSAGE_BODY_BYTES).toBe(64 * KIB);
    expect(doc).toContain("| relay body, as stored | 64 KiB | 413 |");
    expect([INBOX_MAX_LIMIT, INBOX_MIN_MAX_BYTES, INBOX_DEFAULT_MAX_BYTES, INBOX_MAX_BYTES]).toEqual([
      100,
      KIB,
      MIB,
      4 * MIB,
    ]);
    expect(doc).toContain("`limit` 1-100 (100), `max_bytes` 1 KiB-4 MiB (1 MiB)");
    expect([DEFAULT_INBOX_MAX_MESSAGES, DEFAULT_INBOX_MAX_BYTES]).toEqual([1000, 32 * MIB]);
    expect(doc).toContain("| inbox quota | 1,000 messages, 32 MiB");
    expect([DEFAULT_SEND_RATE_PER_MINUTE, DEFAULT_SEND_BURST]).toEqual([120, 60]);
    expect(doc).toContain("| sends per sender | 120 a minute, burst 60");
    expect(DEFAULT_MAX_CONNECTIONS).toBe(1024);
    expect(doc).toContain("| open connections | 1024");
    expect([DEFAULT_HEADERS_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS]).toEqual([20_000, 60_000]);
    expect(doc).toContain("| request headers / whole request | 20 s / 60 s");
    expect([TRUST_PAGE_MAX_LIMIT, TRUST_PAGE_DEFAULT_LIMIT]).toEqual([1000, 500]);
    expect(doc).toContain("`limit` 1-1000 (500, **extension**)");
    expect(doc).toContain("| trust list page | `limit` 1-1,000 records (default 500) |");
    expect([LOOKUP_MAX_IDS, LOOKUP_MAX_REQUEST_BYTES, LOOKUP_MAX_PER_NODE_ID]).toEqual([1000, 256 * KIB, 10]);
    expect(doc).toContain("| lookup request | 1,000 ids, 256 KiB | 422 / 413 |");
    expect(doc).toContain("at most the 10 seen most\n  recently are returned per node id");
    expect(MAX_QUERY_TERMS).toBe(32);
    expect(doc).toContain("(up to 16 KiB, 32 words)");
    expect(MAX_JWS_LENGTH).toBe(16 * KIB);
    expect(doc).toContain("| `signed_record`, `X-Agent-Proof` | 16 KiB | 422 / 401 |");
    expect([PROOF_WINDOW_MS, NONCE_CACHE_SIZE]).toEqual([5 * 60_000, 100_000]);
    expect(doc).toContain("`t` is within 5 minutes of the\nregistry's clock");
    expect(doc).toContain("The registry remembers spent nonces for 10 minutes,\nat most the last 100,000");
  });
});

// An account runtime against the reference registry across restarts: with its state directory it presents
// its saved agent token and gets its registration back (same id, also after a stop deregistered it); with
// the state directory lost it cannot take its own hostname over, and its status says why and how to recover.
// Its record is bound to the installation's key: the key alone recovers a lost token, a token alone is refused.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryError } from "../../src/adapters/registry/errors.js";
import { resolveAccounts } from "../../src/config.js";
import { IDENTITY_FILE, loadOrCreateIdentity } from "../../src/identity/keys.js";
import { verifyRecord } from "../../src/identity/signed-record.js";
import { type RegistryServerHandle, startRegistryServer } from "../../src/registry-server/server.js";
import {
  type AccountRuntime,
  ownershipRefusal,
  startAccountRuntime,
} from "../../src/runtime/account-runtime.js";
import { quiet, until } from "./support/until.js";

describe("registration ownership across restarts", () => {
  let registry: RegistryServerHandle;
  const dir = mkdtempSync(join(tmpdir(), "ar-ownership-"));
  const running: AccountRuntime[] = [];

  const start = async (stateRoot: string, hostname = "keeper", registryUrl = registry.url) => {
    const [account] = resolveAccounts(
      { registryUrl, transport: "none", accounts: { main: { hostname } } },
      {},
    );
    const runtime = await startAccountRuntime({ account: account!, stateRoot, log: quiet });
    running.push(runtime);
    return runtime;
  };

  const stop = async (runtime: AccountRuntime) => {
    await runtime.stop();
    running.splice(running.indexOf(runtime), 1);
  };

  beforeAll(async () => {
    registry = await startRegistryServer({ port: 0, db: ":memory:", sweepIntervalMs: 0 });
  });

  afterAll(async () => {
    for (const runtime of running) await runtime.stop();
    await registry.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a restarted runtime with the same state dir re-registers with its saved token and keeps its id", async () => {
    const stateRoot = join(dir, "kept");
    const first = await start(stateRoot);
    const { agentId } = await until(
      () => first.status().lifecycle === "online" && first.status(),
      "the first registration",
    );
    const saved = first.state.identity();
    expect(saved.agentToken).toEqual(expect.any(String));
    expect(saved.peerId).toMatch(/^p_/);
    // Stopping deregisters; the token stays in identity.json for the next registration.
    await stop(first);
    const afterStop = JSON.parse(
      readFileSync(join(stateRoot, "agent-registry", "accounts", "main", "identity.json"), "utf8"),
    ) as { agentToken: string | null; agentId: string | null };
    expect(afterStop.agentToken).toBe(saved.agentToken);

    const second = await start(stateRoot);
    const status = await until(
      () => second.status().lifecycle === "online" && second.status(),
      "re-registration",
    );
    expect(status.agentId).toBe(agentId);
    expect(second.state.identity().agentToken).toBe(saved.agentToken);
    await stop(second);
  });

  it("keeps its registration at a registry while it uses another one, and gets it back on return", async () => {
    const other = await startRegistryServer({ port: 0, db: ":memory:", sweepIntervalMs: 0 });
    try {
      const stateRoot = join(dir, "switching");
      const first = await start(stateRoot, "wanderer");
      const { agentId } = await until(
        () => first.status().lifecycle === "online" && first.status(),
        "online",
      );
      await stop(first);
      const elsewhere = await start(stateRoot, "wanderer", other.url);
      await until(() => elsewhere.status().lifecycle === "online", "online at the other registry");
      await stop(elsewhere);
      // The first registry still holds "wanderer" for the token this account got there: it must present it again.
      const back = await start(stateRoot, "wanderer");
      const status = await until(() => back.status().lifecycle === "online" && back.status(), "online again");
      expect(status.agentId).toBe(agentId);
      await stop(back);
    } finally {
      await other.close();
    }
  });

  it("binds its record to the installation's key, signed, and gets a new token with the key alone", async () => {
    const stateRoot = join(dir, "keyed");
    const first = await start(stateRoot, "signer");
    const { agentId } = await until(() => first.status().lifecycle === "online" && first.status(), "online");
    const key = loadOrCreateIdentity(first.state.dir).publicKey;
    const record = (await (await fetch(`${registry.url}/api/v1/agents/${agentId}`)).json()) as Record<
      string,
      unknown
    >;
    expect(record.public_key).toBe(key);
    expect(await verifyRecord(record.signed_record)).toMatchObject({ hostname: "signer", public_key: key });
    const token = first.state.identity().agentToken;
    await stop(first);
    // The token is lost, the key is not.
    const file = join(first.state.dir, "identity.json");
    writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, "utf8")), agentToken: null }));
    const second = await start(stateRoot, "signer");
    const status = await until(
      () => second.status().lifecycle === "online" && second.status(),
      "online again",
    );
    expect(status.agentId).toBe(agentId);
    expect(second.state.identity().agentToken).toEqual(expect.any(String));
    expect(second.state.identity().agentToken).not.toBe(token);
    await stop(second);
  });

  it("a runtime that kept its token but lost its key cannot move the record to a new key", async () => {
    const stateRoot = join(dir, "keyless");
    const first = await start(stateRoot, "keyless");
    await until(() => first.status().lifecycle === "online", "online");
    await stop(first);
    rmSync(join(first.state.dir, IDENTITY_FILE));
    const second = await start(stateRoot, "keyless");
    const status = await until(() => second.status().lastError !== null && second.status(), "a refusal");
    expect(status.lastError).toMatchObject({ kind: "conflict", status: 409 });
    expect(status.lastError!.message).toMatch(
      /bound to a key this gateway does not hold \(identity\.key lost/,
    );
    expect(status.lastError!.message).toContain(
      `agent-registry release --url ${registry.url} --hostname keyless`,
    );
    await stop(second);
  });

  it("a runtime whose state dir was lost says the hostname is owned elsewhere and how to recover, with backoff", async () => {
    // Another hostname: "keeper" is still held for the first test's (deregistered) registration.
    const owner = await start(join(dir, "owner"), "holder");
    await until(() => owner.status().lifecycle === "online", "the owner online");
    const lost = await start(join(dir, "lost"), "holder");
    const status = await until(() => lost.status().lastError !== null && lost.status(), "a refusal");
    expect(status.lifecycle).toBe("idle");
    expect(status.nextRetryDelayMs).toBeGreaterThan(0);
    const message = status.lastError!.message;
    expect(message).toMatch(
      /hostname "holder" is owned by another registration whose agent token this gateway does not have/,
    );
    expect(message).toMatch(/lost or replaced state directory/);
    expect(message).toContain(`agent-registry release --url ${registry.url} --hostname holder`);
    expect(message).toMatch(/wait until \d{4}-\d{2}-\d{2}T/);
    expect(message).toMatch(/different hostname for account "main"/);
    // The owner is untouched.
    expect(owner.status().lifecycle).toBe("online");
    await stop(lost);
    await stop(owner);
  });
});

describe("ownershipRefusal", () => {
  const context = { hostname: "keeper", accountId: "main", registryUrl: "http://127.0.0.1:8001" };
  const refusal = (status: number, kind: "unauthorized" | "forbidden" | "conflict", detail: string) =>
    new RegistryError(`Agent Registry answered ${status}`, { operation: "register", kind, status, detail });

  it("explains a 401 for a configured installation id whose token is lost", () => {
    const detail =
      "hostname 'keeper' is owned: send its saved agent_token as Authorization: Bearer <agent_token>; token lost? wait until 2026-03-01T00:00:00.000Z (release), ask the operator to run 'agent-registry release --url <registry> --hostname keeper', or use another hostname";
    const plain = ownershipRefusal(refusal(401, "unauthorized", detail), context);
    expect(plain).toMatchObject({ kind: "unauthorized", status: 401, operation: "register" });
    expect(plain?.message).toMatch(/wait until 2026-03-01T00:00:00.000Z/);
  });

  it("leaves other failures alone: a wrong deployment key, a refusal from another operation", () => {
    const key = refusal(401, "unauthorized", "missing or wrong X-Registry-Key header");
    expect(ownershipRefusal(key, context)).toBeNull();
    const heartbeat = new RegistryError("x", {
      operation: "heartbeat",
      kind: "forbidden",
      status: 403,
      detail: "agent-registry release",
    });
    expect(ownershipRefusal(heartbeat, context)).toBeNull();
  });
});

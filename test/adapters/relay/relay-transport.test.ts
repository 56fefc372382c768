// The relay transport against the reference registry (real HTTP on 127.0.0.1): sends, error mapping and the
// trust handshake through the registry's trust endpoints.
import { afterEach, describe, expect, it } from "vitest";
import { RegistryError } from "../../../src/adapters/registry/errors.js";
import { createRelayTransport, toTransportError } from "../../../src/adapters/relay/relay-transport.js";
import { createEnvelope } from "../../../src/adapters/transport/envelope.js";
import { type Transport, TransportError } from "../../../src/adapters/transport/transport.js";
import { type Installation, type RelayWorld, startRelayWorld } from "./helpers.js";

let world: RelayWorld | undefined;
afterEach(async () => {
  await world?.cleanup();
  world = undefined;
});

function transportOf(
  who: Installation,
  names: { assistantName?: string; humanName?: string } = {},
): Transport {
  return createRelayTransport({
    client: who.client,
    self: {
      installationId: who.installationId,
      hostname: who.hostname,
      agentToken: () => who.token,
      ...names,
    },
  });
}

const peer = (hostname: string) => ({ hostname, nodeId: null, installationId: null });

async function expectTransportError(promise: Promise<unknown>, code: string): Promise<TransportError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TransportError);
  expect((err as TransportError).code).toBe(code);
  return err as TransportError;
}

describe("relay send", () => {
  it("posts the envelope as the body with the envelope id as message id, resolving the peer by hostname", async () => {
    world = await startRelayWorld({ trusted: true });
    const envelope = createEnvelope({ fromHostname: "alpha", body: "hello beta" });
    const result = await transportOf(world.alpha).send(peer("beta"), envelope);
    expect(result.messageId).toBe(envelope.id);

    const inbox = await world.beta.client.readInbox(
      { installationId: world.beta.installationId },
      { token: world.beta.token },
    );
    expect(inbox.messages).toHaveLength(1);
    expect(inbox.messages[0]).toMatchObject({
      messageId: envelope.id,
      fromInstallationId: world.alpha.peerId,
      fromHostname: "alpha",
    });
    expect(JSON.parse(inbox.messages[0]?.body ?? "")).toEqual(envelope);
  });

  it("stores a resent envelope once (the relay dedupes by message id)", async () => {
    world = await startRelayWorld({ trusted: true });
    const transport = transportOf(world.alpha);
    const envelope = createEnvelope({ fromHostname: "alpha", body: "once" });
    await transport.send(peer("beta"), envelope);
    await transport.send({ hostname: "beta", nodeId: null, installationId: world!.beta.peerId }, envelope);
    const inbox = await world.beta.client.readInbox(
      { installationId: world.beta.installationId },
      { token: world.beta.token },
    );
    expect(inbox.messages.map((m) => m.messageId)).toEqual([envelope.id]);
  });

  it("fails with not_trusted (handshake first) before trust is approved", async () => {
    world = await startRelayWorld();
    const err = await expectTransportError(
      transportOf(world.alpha).send(peer("beta"), createEnvelope({ fromHostname: "alpha", body: "hi" })),
      "not_trusted",
    );
    expect(err.operation).toBe("send");
    expect(err.message).toMatch(/handshake first/);
  });

  it("fails with peer_unknown for a hostname the registry does not know", async () => {
    world = await startRelayWorld({ trusted: true });
    await expectTransportError(
      transportOf(world.alpha).send(peer("nobody"), createEnvelope({ fromHostname: "alpha", body: "hi" })),
      "peer_unknown",
    );
  });

  it("fails with invalid for a message over the relay's 64 KiB", async () => {
    world = await startRelayWorld({ trusted: true });
    const big = createEnvelope({ fromHostname: "alpha", body: "x".repeat(70 * 1024) });
    const err = await expectTransportError(transportOf(world.alpha).send(peer("beta"), big), "invalid");
    expect(err.message).toMatch(/shorten/);
  });

  it("fails with unavailable when the registry is down", async () => {
    world = await startRelayWorld({ trusted: true });
    await world.stop();
    const err = await expectTransportError(
      transportOf(world.alpha).send(
        { hostname: "beta", nodeId: null, installationId: world!.beta.peerId },
        createEnvelope({ fromHostname: "alpha", body: "hi" }),
      ),
      "unavailable",
    );
    expect(err.message).toMatch(/retry later/);
  });

  it("tells the sender the peer's inbox is full when the registry answers 507", async () => {
    world = await startRelayWorld({ trusted: true, server: { inboxMaxMessages: 1 } });
    const send = () =>
      transportOf(world!.alpha).send(
        { hostname: "beta", nodeId: null, installationId: "inst-beta" },
        createEnvelope({ fromHostname: "alpha", body: "hi" }),
      );
    await send();
    const err = await expectTransportError(send(), "inbox_full");
    expect(err.message).toBe("beta's inbox is full; try again later");
  });

  it("tells the sender to slow down, with the registry's Retry-After, when it answers 429", async () => {
    world = await startRelayWorld({ trusted: true, server: { sendRatePerMinute: 2, sendBurst: 1 } });
    const send = () =>
      transportOf(world!.alpha).send(
        { hostname: "beta", nodeId: null, installationId: "inst-beta" },
        createEnvelope({ fromHostname: "alpha", body: "hi" }),
      );
    await send();
    const err = await expectTransportError(send(), "rate_limited");
    expect(err.message).toMatch(/^sending too fast; retry after (29|30) s/);
  });

  it("refuses before sending a body that is small as text but over 64 KiB as the relay stores it", async () => {
    world = await startRelayWorld({ trusted: true });
    const quoted = createEnvelope({ fromHostname: "alpha", body: '"'.repeat(25 * 1024) });
    const err = await expectTransportError(transportOf(world.alpha).send(peer("beta"), quoted), "invalid");
    expect(err.message).toMatch(/as stored: JSON-escaped/);
  });

  it("maps a 413 from the registry to invalid", () => {
    const err = toTransportError(
      "send",
      peer("beta"),
      new RegistryError("too large", { operation: "relay.send", kind: "too_large", status: 413 }),
    );
    expect(err.code).toBe("invalid");
  });
});

describe("relay trust", () => {
  it("carries the introduction and names to the peer's pending list, with the requester's hostname", async () => {
    world = await startRelayWorld();
    await transportOf(world.alpha, { assistantName: "Alpha Bot", humanName: "Ada" }).requestTrust(
      peer("beta"),
      "I translate documents",
    );
    const pending = await transportOf(world.beta).listPending();
    expect(pending).toHaveLength(1);
    expect(pending[0]).toMatchObject({
      peer: { hostname: "alpha", nodeId: null, installationId: world!.alpha.peerId },
      introduction: "I translate documents",
      assistantName: "Alpha Bot",
      humanName: "Ada",
    });
    expect(typeof pending[0]?.receivedAt).toBe("string");
  });

  it("approval makes trust symmetric: both list each other and messages flow both ways", async () => {
    world = await startRelayWorld();
    const alpha = transportOf(world.alpha);
    const beta = transportOf(world.beta);
    await alpha.requestTrust(peer("beta"), "hello");
    const [request] = await beta.listPending();
    if (!request) throw new Error("no pending request");
    await beta.approve(request.peer);

    expect(await beta.listPending()).toEqual([]);
    const alphaTrusted = await alpha.listTrusted();
    const betaTrusted = await beta.listTrusted();
    expect(alphaTrusted.map((t) => t.peer)).toEqual([
      { hostname: "beta", nodeId: null, installationId: world!.beta.peerId },
    ]);
    expect(betaTrusted.map((t) => t.peer)).toEqual([
      { hostname: "alpha", nodeId: null, installationId: world!.alpha.peerId },
    ]);
    expect(alphaTrusted[0]?.since).toEqual(expect.any(String));

    await alpha.send(peer("beta"), createEnvelope({ fromHostname: "alpha", body: "a->b" }));
    await beta.send(peer("alpha"), createEnvelope({ fromHostname: "beta", body: "b->a" }));
  });

  it("names trusted peers as the registry's trust list does: no lookup per peer", async () => {
    world = await startRelayWorld({ trusted: true });
    let lookups = 0;
    const client = world.alpha.client;
    const counted = {
      ...client,
      list: (...args: Parameters<typeof client.list>) => {
        lookups++;
        return client.list(...args);
      },
    };
    const alpha = createRelayTransport({
      client: counted,
      self: {
        installationId: world.alpha.installationId,
        peerId: () => world!.alpha.peerId,
        hostname: "alpha",
        agentToken: () => world!.alpha.token,
      },
    });
    const named = [{ hostname: "beta", nodeId: null, installationId: world.beta.peerId }];
    for (let poll = 0; poll < 3; poll++)
      expect((await alpha.listTrusted()).map((t) => t.peer)).toEqual(named);
    expect(lookups).toBe(0);
  });

  it("rejecting a request keeps the peer out", async () => {
    world = await startRelayWorld();
    const alpha = transportOf(world.alpha);
    const beta = transportOf(world.beta);
    await alpha.requestTrust(peer("beta"), "hello");
    await beta.reject(peer("alpha"), "not now");
    expect(await beta.listPending()).toEqual([]);
    expect(await alpha.listTrusted()).toEqual([]);
    await expectTransportError(
      alpha.send(peer("beta"), createEnvelope({ fromHostname: "alpha", body: "hi" })),
      "not_trusted",
    );
  });

  it("untrust revokes trust from either side", async () => {
    world = await startRelayWorld({ trusted: true });
    const alpha = transportOf(world.alpha);
    const beta = transportOf(world.beta);
    // alpha asked and beta approved: beta rejects alpha's request, alpha (no request of beta's) blocks.
    await beta.untrust(peer("alpha"));
    expect(await alpha.listTrusted()).toEqual([]);
    await expectTransportError(
      alpha.send(peer("beta"), createEnvelope({ fromHostname: "alpha", body: "hi" })),
      "not_trusted",
    );

    await world.cleanup();
    world = await startRelayWorld({ trusted: true });
    const alpha2 = transportOf(world.alpha);
    await alpha2.untrust(peer("beta"));
    expect(await alpha2.listTrusted()).toEqual([]);
    expect(await transportOf(world.beta).listTrusted()).toEqual([]);
    await expectTransportError(
      transportOf(world.beta).send(peer("alpha"), createEnvelope({ fromHostname: "beta", body: "hi" })),
      "not_trusted",
    );
  });

  it("a trust request to an unknown hostname fails with peer_unknown", async () => {
    world = await startRelayWorld();
    await expectTransportError(transportOf(world.alpha).requestTrust(peer("nobody"), "hi"), "peer_unknown");
  });
});

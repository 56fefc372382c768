// The wire schemas alone: each tolerance of the original server's shapes, and typed output.
import { describe, expect, it } from "vitest";
import {
  agentPageSchema,
  agentRecordSchema,
  inboxResponseSchema,
  pendingTrustResponseSchema,
  registerResponseSchema,
  trustChangesResponseSchema,
  trustListResponseSchema,
} from "../../../src/adapters/registry/schemas.js";

const wire = {
  id: 12,
  hostname: "alice",
  installation_id: "inst-alice",
  pilot_node_id: 4242,
  capabilities: ["calendar"],
  status: "ONLINE",
  last_seen: "2026-01-12T10:00:00Z",
};

describe("registry wire schemas", () => {
  it("coerces numeric ids, lowercases status and fills missing fields with null", () => {
    expect(agentRecordSchema.parse({ ...wire, p2p_endpoint: "wss://x" })).toEqual({
      id: "12",
      hostname: "alice",
      installationId: "inst-alice",
      peerId: null,
      pilotNodeId: "4242",
      pilotAddress: null,
      displayName: null,
      description: null,
      capabilities: ["calendar"],
      status: "online",
      lastSeen: "2026-01-12T10:00:00Z",
      createdAt: null,
      updatedAt: null,
      publicKey: null,
      signedRecord: null,
    });
  });

  it("takes peer_id as the id peers address an agent by, when the registry has one", () => {
    const r = agentRecordSchema.parse({ ...wire, installation_id: null, peer_id: "p_0123" });
    expect(r).toMatchObject({ installationId: "p_0123", peerId: "p_0123" });
  });

  it("reads epoch timestamps (seconds or ms), comma-separated capabilities and odd statuses", () => {
    const r = agentRecordSchema.parse({
      ...wire,
      last_seen: 1_768_212_000,
      created_at: 1_768_212_000_000,
      capabilities: "calendar, email,",
      status: "busy",
    });
    expect(r.lastSeen).toBe("2026-01-12T10:00:00.000Z");
    expect(r.createdAt).toBe("2026-01-12T10:00:00.000Z");
    expect(r.capabilities).toEqual(["calendar", "email"]);
    expect(r.status).toBe("unknown");
  });

  it("unwraps a registration answered as {agent, agent_token}", () => {
    expect(registerResponseSchema.parse({ agent: wire, agent_token: "t-1" })).toMatchObject({
      record: { id: "12", hostname: "alice" },
      agentToken: "t-1",
    });
    expect(registerResponseSchema.parse(wire).agentToken).toBeNull();
  });

  it("reads pages as {agents,total}, a bare array, or {items}", () => {
    expect(agentPageSchema.parse({ agents: [wire], total: 7 }).total).toBe(7);
    expect(agentPageSchema.parse([wire, wire]).total).toBe(2);
    expect(agentPageSchema.parse({ items: [wire] }).agents).toHaveLength(1);
    expect(agentPageSchema.safeParse({ agents: [{ id: 1 }] }).success).toBe(false);
  });

  it("reads an inbox given as a bare array and derives the next cursor", () => {
    expect(
      inboxResponseSchema.parse([{ id: "m-1", body: "hi", cursor: 5, from_hostname: "bob", extra: true }]),
    ).toEqual({
      messages: [
        {
          messageId: "m-1",
          fromInstallationId: null,
          fromHostname: "bob",
          body: "hi",
          createdAt: null,
          cursor: "5",
        },
      ],
      unreadable: [],
      nextCursor: "5",
    });
  });

  it("reads each inbox message on its own: a bad one is reported unreadable, the rest still delivered", () => {
    const page = inboxResponseSchema.parse({
      messages: [
        { message_id: "m-1", body: { v: 1 }, cursor: "1", from_hostname: "eve" },
        { body: "no id", cursor: "2" },
        { message_id: "m-3", body: "fine", cursor: "3" },
        { message_id: "m-4", body: "x".repeat(64 * 1024 + 1), cursor: "4" },
        { message_id: "m-5", body: "ok", created_at: { not: "a time" }, cursor: "5" },
        "not even an object",
      ],
      next_cursor: "6",
    });
    expect(page.messages.map((m) => m.messageId)).toEqual(["m-3"]);
    expect(page.unreadable.map((u) => [u.position, u.messageId, u.cursor, u.reason])).toEqual([
      [0, "m-1", "1", "body_not_string"],
      [1, null, "2", "malformed"],
      [3, "m-4", "4", "too_large"],
      [4, "m-5", "5", "malformed"],
      [5, null, null, "malformed"],
    ]);
    expect(page.unreadable[0]).toMatchObject({
      fromHostname: "eve",
      detail: "body is an object, not a string",
    });
    expect(page.nextCursor).toBe("6");
  });

  it("reads pending trust as requests, relationships or a bare array", () => {
    const expected = [
      {
        fromId: "inst-bob",
        fromAssistantName: "Bob",
        fromHumanName: null,
        introduction: null,
        createdAt: null,
      },
    ];
    expect(
      pendingTrustResponseSchema.parse({ requests: [{ from_id: "inst-bob", from_assistant_name: "Bob" }] }),
    ).toEqual(expected);
    expect(
      pendingTrustResponseSchema.parse({
        relationships: [{ requester_id: "inst-bob", assistant_name: "Bob" }],
      }),
    ).toEqual(expected);
    expect(pendingTrustResponseSchema.parse([{ requester_id: "inst-bob", assistant_name: "Bob" }])).toEqual(
      expected,
    );
    expect(pendingTrustResponseSchema.parse({})).toEqual([]);
  });

  it("reads the trust list with from_id/to_id as well as requester_id/target_id", () => {
    expect(trustListResponseSchema.parse([{ from_id: "a", to_id: "b", status: "APPROVED" }])).toEqual([
      {
        requesterId: "a",
        targetId: "b",
        status: "approved",
        createdAt: null,
        approvedAt: null,
        updatedAt: null,
        peerHostname: null,
        introduction: null,
        assistantName: null,
        humanName: null,
      },
    ]);
    expect(
      trustListResponseSchema.safeParse({ peers: [{ requester_id: "a", status: "pending" }] }).success,
    ).toBe(false);
  });

  it("reads a page of trust changes, and a reply without next_cursor as a registry that does not page", () => {
    const entry = {
      requester_id: "a",
      target_id: "b",
      status: "pending",
      updated_at: "2026-01-12T10:00:00Z",
      peer_hostname: "bob",
      introduction: "hi",
      assistant_name: "Ann",
    };
    expect(trustChangesResponseSchema.parse({ peers: [entry], next_cursor: 7, has_more: true })).toEqual({
      peers: [
        expect.objectContaining({
          updatedAt: "2026-01-12T10:00:00Z",
          peerHostname: "bob",
          introduction: "hi",
          assistantName: "Ann",
          humanName: null,
        }),
      ],
      nextCursor: "7",
      hasMore: true,
    });
    for (const legacy of [[entry], { relationships: [entry] }, { peers: [entry], has_more: true }]) {
      expect(trustChangesResponseSchema.parse(legacy)).toMatchObject({ nextCursor: null, hasMore: false });
    }
    expect(trustChangesResponseSchema.safeParse({ peers: [{ status: "x" }], next_cursor: "1" }).success).toBe(
      false,
    );
  });
});

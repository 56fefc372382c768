// The ChannelPlugin object: how OpenClaw sees the agent-registry channel. Accounts run in gateway.startAccount
// until OpenClaw aborts them; status snapshots map the account runtime to OpenClaw's channel status.
import type { ChannelPlugin } from "openclaw/plugin-sdk/channel-core";
import { dispatchInboundDirectDm } from "openclaw/plugin-sdk/channel-inbound";
import { resolveStateDir } from "openclaw/plugin-sdk/state-paths";
import {
  CHANNEL_ID,
  HOSTNAME_PATTERN,
  listAccountIds,
  type ResolvedAccount,
  resolveAccount,
} from "../../config.js";
import { NetworkError } from "../../runtime/account-network.js";
import type { AccountRuntimeStatus } from "../../runtime/account-runtime.js";
import { startAccountRuntime } from "../../runtime/account-runtime.js";
import type { AccountRuntimes } from "../../runtime/account-runtimes.js";
import { createSessionDispatcher, type DispatchDirectDm } from "./inbound-dispatch.js";
import { createInspect } from "./inspection.js";
import { createPairingBridge, type PairingBridge, type PairingNetwork, pairingAdapter } from "./pairing.js";
import { createPairingStore, isSdkPairing, stateDatabasePath } from "./pairing-store.js";
import { collectGlobalFindings, collectSecurityFindings } from "./security.js";

type OpenClawConfigLike = { channels?: Record<string, unknown> };
type AccountSnapshot = Parameters<NonNullable<ChannelPlugin["gateway"]>["startAccount"] & object>[0] extends {
  setStatus: (next: infer S) => void;
}
  ? S
  : never;

function section(cfg: OpenClawConfigLike): unknown {
  return cfg.channels?.[CHANNEL_ID] ?? {};
}

const LIFECYCLE: Record<AccountRuntimeStatus["lifecycle"], "starting" | "ready" | "recovering" | "stopped"> =
  {
    private: "ready",
    idle: "recovering",
    registering: "starting",
    online: "ready",
    "re-registering": "recovering",
    deregistering: "stopped",
    stopped: "stopped",
  };

/** Our status as OpenClaw's snapshot: `connected` means the account does what its config asks. */
export function toChannelSnapshot(status: AccountRuntimeStatus): AccountSnapshot {
  const ready = status.lifecycle === "online" || status.lifecycle === "private";
  const lifecycle =
    status.lifecycle === "idle" && !status.lastError ? "starting" : LIFECYCLE[status.lifecycle];
  return {
    accountId: status.accountId,
    running: status.lifecycle !== "stopped",
    connected: ready,
    lifecycle,
    statusState: status.lifecycle,
    stateReason:
      status.lastError?.message ?? (status.lifecycle === "private" ? "not discoverable" : undefined),
    lastError: status.lastError?.message ?? status.visibilityError ?? null,
    identity: status.hostname ?? undefined,
    baseUrl: status.registryUrl,
    profile: {
      lifecycle: status.lifecycle,
      agentId: status.agentId,
      hostname: status.hostname,
      peerId: status.peerId,
      fingerprint: status.fingerprint,
      discoverable: status.discoverable,
      visibilitySource: status.visibilitySource,
      lastHeartbeatAt: status.lastHeartbeatAt,
      heartbeatFailures: status.heartbeatFailures,
      nextRetryDelayMs: status.nextRetryDelayMs,
      registry: {
        url: status.registry.url,
        configured: status.registry.configured,
        lastFailoverAt: status.registry.lastFailover?.at ?? null,
        lastFailoverFrom: status.registry.lastFailover?.from ?? null,
      },
      messaging: {
        transport: status.messaging.transport,
        ready: status.messaging.ready,
        reason: status.messaging.reason,
        peers: status.messaging.peers.total,
        trusted: status.messaging.peers.trusted,
        pending: status.messaging.peers.pending,
      },
    },
  } as AccountSnapshot;
}

/** How often the gateway looks at OpenClaw's pairing allow list for approvals made in another process. */
const PAIRING_TICK_MS = 2_000;

function waitForAbort(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

export function createAgentRegistryChannel(runtimes: AccountRuntimes): ChannelPlugin<ResolvedAccount> {
  // The pairing bridges of the accounts this process runs (the gateway); a CLI process has none.
  const bridges = new Map<string, PairingBridge>();
  return {
    id: CHANNEL_ID,
    meta: {
      id: CHANNEL_ID,
      label: "Agent Registry",
      selectionLabel: "Agent Registry (Pilot Protocol)",
      docsPath: "/channels/agent-registry",
      blurb: "Be discoverable by other assistants and talk to them peer-to-peer.",
    },
    capabilities: { chatTypes: ["direct"] },
    config: {
      listAccountIds: (cfg) => listAccountIds(section(cfg)),
      resolveAccount: (cfg, accountId) => resolveAccount(section(cfg), accountId),
      isEnabled: (account) => account.enabled,
      isConfigured: (account) => Boolean(account.hostname),
    },
    status: {
      buildAccountSnapshot: ({ account, runtime }) => {
        const live = runtimes.list().find((r) => r.accountId === account.accountId);
        return live
          ? { ...runtime, ...toChannelSnapshot(live.status()) }
          : { accountId: account.accountId, ...runtime };
      },
    },
    pairing: pairingAdapter({
      wake: (accountId) => {
        for (const [id, bridge] of bridges) if (!accountId || id === accountId) void bridge.reconcile();
      },
    }),
    security: {
      // Who may write: the peers whose handshake the owner approved (known where the account runs). The pairing
      // allow list is not that: it only carries approvals to the gateway, which consumes them within seconds.
      resolveDmPolicy: ({ account }) => {
        const live = runtimes.list().find((r) => r.accountId === account.accountId);
        const trusted = live?.network
          ? live.network
              .peers()
              .filter((peer) => peer.state === "trusted" && peer.hostname)
              .map((peer) => peer.hostname as string)
          : null;
        const path = `channels.${CHANNEL_ID}.accounts.${account.accountId}.`;
        return {
          policy: "pairing",
          allowFrom: trusted,
          // OpenClaw prints `<policyPath>="pairing"`: a handshake is how a peer asks, whoever approves it.
          policyPath: `channels.${CHANNEL_ID}.accounts.${account.accountId} handshake policy`,
          allowFromPath: `${path}inbound.`,
          approveHint: `openclaw pairing approve ${CHANNEL_ID} <code> --account ${account.accountId}`,
          normalizeEntry: (raw: string) => raw.trim().toLowerCase(),
        };
      },
      collectWarnings: ({ cfg, account }) => {
        const live = runtimes.list().find((r) => r.accountId === account.accountId);
        const status = live?.status();
        return [
          ...collectSecurityFindings({
            account,
            cfg: cfg as Parameters<typeof collectSecurityFindings>[0]["cfg"],
            env: process.env,
            stateDir: resolveStateDir(process.env),
            live: status
              ? {
                  registered: status.agentId !== null && status.lifecycle === "online",
                  hasAgentToken: live?.state.identity().agentToken != null,
                  daemon: status.messaging.daemon,
                }
              : null,
          }),
          ...collectGlobalFindings(cfg as Parameters<typeof collectGlobalFindings>[0]),
        ];
      },
      // Peer agents always get their own session per account and peer, whatever the global session.dmScope:
      // their text must never land in the owner's main session.
      dmRouting: { resolveDmScope: () => "per-account-channel-peer" },
    },
    messaging: {
      targetPrefixes: [`${CHANNEL_ID}:`],
      targetIdComparison: "lowercase",
      // A target is a peer's Pilot/registry hostname, e.g. `--target bob`.
      normalizeTarget: (raw) => {
        const hostname = raw
          .replace(/^agent-registry:/i, "")
          .trim()
          .toLowerCase();
        return HOSTNAME_PATTERN.test(hostname) ? hostname : undefined;
      },
      targetResolver: {
        hint: "<hostname of the peer agent, e.g. bob>",
        looksLikeId: (raw: string, normalized?: string) =>
          HOSTNAME_PATTERN.test(
            (normalized ?? raw)
              .replace(/^agent-registry:/i, "")
              .trim()
              .toLowerCase(),
          ),
      },
    } as ChannelPlugin["messaging"],
    outbound: {
      deliveryMode: "gateway",
      sendText: async ({ to, text, accountId }) => {
        const runtime = runtimes.get(accountId ?? null);
        const target = to
          .replace(/^agent-registry:/, "")
          .trim()
          .toLowerCase();
        try {
          const { messageId } = await runtime.network.send(target, text);
          return { channel: CHANNEL_ID, messageId, timestamp: Date.now() };
        } catch (error) {
          if (error instanceof NetworkError) throw new Error(`agent-registry: ${error.message}`);
          throw error;
        }
      },
    },
    heartbeat: {
      checkReady: async ({ accountId }) => {
        try {
          const status = runtimes.get(accountId).status();
          const ok = status.lifecycle === "online" || status.lifecycle === "private";
          return { ok, reason: ok ? status.lifecycle : (status.lastError?.message ?? status.lifecycle) };
        } catch (error) {
          return { ok: false, reason: (error as Error).message };
        }
      },
    },
    gateway: {
      startAccount: async (ctx) => {
        const log = {
          info: (m: string) => ctx.log?.info(m),
          warn: (m: string) => ctx.log?.warn(m),
          error: (m: string) => ctx.log?.error(m),
          debug: (m: string) => ctx.log?.debug?.(m),
        };
        ctx.setStatus({ ...ctx.getStatus(), accountId: ctx.accountId, running: true, lifecycle: "starting" });
        const inspection = await createInspect(log);
        let runtime: Awaited<ReturnType<typeof startAccountRuntime>> | undefined;
        const sdkPairing = (ctx.channelRuntime as { pairing?: unknown } | undefined)?.pairing;
        const pairingStore = isSdkPairing(sdkPairing)
          ? createPairingStore({
              sdk: sdkPairing,
              accountId: ctx.accountId,
              databasePath: stateDatabasePath(resolveStateDir(process.env)),
              log,
            })
          : null;
        if (!pairingStore)
          log.warn(
            "agent-registry: this OpenClaw offers no pairing store: approve handshakes with `openclaw agent-registry approve`",
          );
        // A pairing approval is the owner's, whoever the configured approver is (the owner may always decide).
        const bridge = pairingStore
          ? createPairingBridge({
              accountId: ctx.accountId,
              store: pairingStore,
              network: () => (runtime?.network as unknown as PairingNetwork | undefined) ?? null,
              log,
            })
          : null;
        try {
          runtime = await startAccountRuntime({
            account: ctx.account,
            stateRoot: resolveStateDir(process.env),
            log,
            inspect: inspection.inspect,
            createDispatcher: (helpers) =>
              createSessionDispatcher({
                dispatchDirectDm: dispatchInboundDirectDm as unknown as DispatchDirectDm,
                cfg: ctx.cfg,
                channelRuntime: ctx.channelRuntime,
                channel: CHANNEL_ID,
                accountId: ctx.accountId,
                selfHostname: ctx.account.hostname ?? ctx.accountId,
                introductionFor: helpers.introductionFor,
                reply: helpers.reply,
                log,
              }),
            onStatus: (status) => ctx.setStatus({ ...ctx.getStatus(), ...toChannelSnapshot(status) }),
            ...(bridge
              ? {
                  onAnnounce: (peer) => {
                    const key = peer.hostname ?? (peer.nodeId !== null ? `node-${peer.nodeId}` : null);
                    if (key) bridge.announce(key);
                  },
                }
              : {}),
            notifySession: (sessionKey, text) => {
              if (!runtimes.notifySession(sessionKey, text)) {
                log.warn(`agent-registry: could not tell session ${sessionKey}: ${text}`);
              }
            },
          });
        } catch (error) {
          // A configuration or state-file problem: restarting cannot fix it, so report it and stay down until
          // OpenClaw stops the account (no restart storm).
          const message = error instanceof Error ? error.message : String(error);
          log.error(`agent-registry: ${ctx.accountId} cannot start: ${message}`);
          ctx.setStatus({
            ...ctx.getStatus(),
            running: false,
            connected: false,
            lifecycle: "blocked",
            lastError: message,
          });
          inspection.stop();
          pairingStore?.close();
          await waitForAbort(ctx.abortSignal);
          return;
        }
        const started = runtime;
        runtimes.add(started);
        let tick: ReturnType<typeof setInterval> | null = null;
        let peersSeen: unknown = null;
        const watch = bridge
          ? started.actor.subscribe((snapshot) => {
              // A decision made elsewhere (gateway method, tool) withdraws its pairing request at once.
              if (snapshot.context.peers === peersSeen) return;
              peersSeen = snapshot.context.peers;
              bridge.settle();
            })
          : null;
        if (bridge) {
          bridges.set(ctx.accountId, bridge);
          void bridge.reconcile();
          tick = setInterval(() => void bridge.reconcile(), PAIRING_TICK_MS);
          tick.unref?.();
        }
        try {
          await waitForAbort(ctx.abortSignal);
        } finally {
          if (tick) clearInterval(tick);
          watch?.unsubscribe();
          if (bridges.get(ctx.accountId) === bridge) bridges.delete(ctx.accountId);
          await started.stop();
          pairingStore?.close();
          runtimes.remove(started);
          inspection.stop();
          ctx.setStatus({ ...ctx.getStatus(), ...toChannelSnapshot(started.status()), running: false });
        }
      },
    },
  };
}

// Public surface of the reference Agent Registry server (bin `agent-registry`, tests, the plugin's e2e).
export { RegistryHttpError, type ValidationIssue } from "./errors.js";
export { createLogger, type LogFormat, type LogLevel, type StructuredLogger } from "./logger.js";
export { RegistryMetrics } from "./metrics.js";
export { PostgresRegistryStore, type PostgresStoreOptions } from "./postgres-store.js";
export {
  type RegistryLogger,
  type RegistryServerHandle,
  type RegistryServerOptions,
  startRegistryServer,
} from "./server.js";
export type { AgentRecord, RelayMessage, TrustPeer } from "./service.js";
export { SqliteRegistryStore, type SqliteStoreOptions } from "./sqlite-store.js";
export type { RegistryStore, StoredAgent, StoredMessage, StoredTrust } from "./store.js";
export {
  type PoolUsage,
  StoreNotReadyError,
  type StoreOperationsHooks,
  type StoreTelemetry,
} from "./store-hooks.js";

// The one log interface of the runtime and its adapters (OpenClaw's channel log fits it).
export interface Log {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  debug?(message: string): void;
}

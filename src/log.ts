// The one log interface of the plugin (OpenClaw's channel log fits it). An adapter asks only for the methods it
// calls, as a `Pick` of this; nothing else defines its own logger shape.
export interface Log {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  debug?(message: string): void;
}

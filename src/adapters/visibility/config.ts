// Visibility from the plugin config alone: `discoverable` (default true) with the configured metadata.
import type { VisibilityReading, VisibilitySource } from "./types.js";

export interface ConfigSourceOptions {
  discoverable?: boolean;
}

export function createConfigSource(options: ConfigSourceOptions = {}): VisibilitySource {
  const reading: VisibilityReading = { discoverable: options.discoverable ?? true };
  return {
    read: async () => ({ ...reading }),
  };
}

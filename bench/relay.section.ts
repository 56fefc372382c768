// The relay transport's section of `npm run bench:inbox`: send -> dispatch latency through the reference registry
// (keys prefixed `relay_` in the bench's final JSON line). Target: p50 < 50 ms on loopback.
import { runRelayBench } from "./relay.bench.js";
import type { BenchSection } from "./support/section.js";

export const section: BenchSection = {
  name: "relay",
  async run() {
    const figures = await runRelayBench();
    return {
      rows: [
        {
          metric: "relay send -> dispatch p50",
          value: `${figures.relay_latency_p50_ms} ms`,
          target: "< 50 ms",
          ok: figures.relay_latency_p50_ms < 50,
        },
        { metric: "relay send -> dispatch p99", value: `${figures.relay_latency_p99_ms} ms` },
        { metric: "relay messages", value: String(figures.relay_msgs) },
      ],
      json: { ...figures },
    };
  },
};

// What a bench section is: a named async run that yields table rows and keys for the final JSON line. The inbox
// bench runs its own sections and then any `bench/*.section.ts` file exporting `section` (e.g. the relay's).
export interface BenchRow {
  metric: string;
  value: string;
  target?: string;
  /** Whether the value meets its target (omitted when there is no target). */
  ok?: boolean;
}

export interface BenchResult {
  rows: BenchRow[];
  /** Merged into the last output line; use a prefix per section (`relay_...`). */
  json: Record<string, number | null>;
}

export interface BenchSection {
  name: string;
  run(): Promise<BenchResult>;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

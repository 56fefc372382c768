// Polls a probe until it yields a value (sync or async), or fails naming what it waited for.
export async function until<T>(
  probe: () => T | undefined | false | null | Promise<T | undefined | false | null>,
  what: string,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A logger that drops everything. */
export const quiet = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} };

// The system's Chromium driven by playwright-core, for the tests and the demo that use the network page
// (`.ci/run` installs Debian's `chromium` when it is missing).
import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";

export function chromiumPath(): string {
  const found = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"].find(
    (path) => path && existsSync(path),
  );
  if (!found) throw new Error("no Chromium found: apt-get install chromium (or set CHROMIUM_PATH)");
  return found;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath(), args: ["--no-sandbox"] });
}

/**
 * Opens the gateway's network page as an operator and clicks "Approve <peer>" in `account`'s section; resolves
 * once the page shows the peer trusted.
 */
export async function approveInNetworkPage(options: {
  origin: string;
  token: string;
  account: string;
  peer: string;
  timeoutMs?: number;
}): Promise<void> {
  const { origin, token, account, peer } = options;
  const timeout = options.timeoutMs ?? 60_000;
  const browser = await launchChromium();
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${origin}/plugins/agent-registry/#token=${token}`);
    const section = page.locator(`section[data-account="${account}"]`);
    await section.locator(`li.request[data-peer="${peer}"]`).waitFor({ timeout });
    await section.getByRole("button", { name: `Approve ${peer}` }).click();
    await section.locator(`tr[data-peer="${peer}"] [data-peer-state="trusted"]`).waitFor({ timeout });
  } finally {
    await browser.close();
  }
}

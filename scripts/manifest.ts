// Writes openclaw.plugin.json from src/manifest.ts (run: npm run manifest).
import { writeFileSync } from "node:fs";
import { renderManifest } from "../src/manifest.js";

writeFileSync(new URL("../openclaw.plugin.json", import.meta.url), renderManifest());
console.log("wrote openclaw.plugin.json");

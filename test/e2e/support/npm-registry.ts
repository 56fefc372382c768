// A read-only npm registry on 127.0.0.1 serving the plugin's runtime dependencies, packed from this repo's own
// node_modules. `openclaw plugins install` runs `npm install` for a plugin's dependencies; pointed here (through
// npm_config_registry) it resolves them as it would from registry.npmjs.org, without leaving the machine. A
// package it asks for that is not a runtime dependency gets a 404, so the install fails instead of reaching out.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { execa } from "execa";

export interface LocalNpmRegistry {
  url: string;
  /** Each request's path, in order (packuments as `/<name>`, tarballs as `/-/<file>`). */
  requests: string[];
  /** Names of the packages it serves. */
  packages: string[];
  close(): Promise<void>;
}

interface Lockfile {
  packages: Record<string, { version?: string; dev?: boolean; devOptional?: boolean; peer?: boolean }>;
}

/** Lockfile paths (`node_modules/a`, `node_modules/a/node_modules/b`) of what `npm install --omit=dev` keeps. */
export function runtimeLockPaths(repoRoot: string): string[] {
  const lock = JSON.parse(readFileSync(join(repoRoot, "package-lock.json"), "utf8")) as Lockfile;
  return Object.entries(lock.packages)
    .filter(([path, entry]) => path.startsWith("node_modules/") && !entry.dev && !entry.devOptional)
    .map(([path]) => path);
}

/** Runs npm on the Node that runs the tests (Node 24), whatever `node` the system's npm would pick. */
export function npmEnv(): Record<string, string> {
  return { PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}` };
}

export async function startLocalNpmRegistry(repoRoot: string, workDir: string): Promise<LocalNpmRegistry> {
  const tarballDir = join(workDir, "tarballs");
  mkdirSync(tarballDir, { recursive: true });
  const paths = runtimeLockPaths(repoRoot);
  const { stdout } = await execa(
    "npm",
    [
      "pack",
      ...paths.map((path) => join(repoRoot, path)),
      "--ignore-scripts",
      "--json",
      "--pack-destination",
      tarballDir,
    ],
    { env: npmEnv(), cwd: workDir },
  );
  const packed = JSON.parse(String(stdout)) as Array<{ name: string; version: string; filename: string }>;

  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  // One packument per name; a name can come in several versions (nested node_modules).
  const packuments = new Map<string, { versions: Record<string, unknown>; latest: string }>();
  const files = new Map<string, Buffer>();
  packed.forEach((entry, index) => {
    const manifest = JSON.parse(
      readFileSync(join(repoRoot, paths[index] as string, "package.json"), "utf8"),
    ) as Record<string, unknown>;
    const bytes = readFileSync(join(tarballDir, entry.filename));
    files.set(entry.filename, bytes);
    const packument = packuments.get(entry.name) ?? { versions: {}, latest: entry.version };
    packument.versions[entry.version] = {
      ...Object.fromEntries(Object.entries(manifest).filter(([key]) => !key.startsWith("_"))),
      dist: {
        tarball: `${url}/-/${entry.filename}`,
        integrity: `sha512-${createHash("sha512").update(bytes).digest("base64")}`,
        shasum: createHash("sha1").update(bytes).digest("hex"),
      },
    };
    packuments.set(entry.name, packument);
  });

  const requests: string[] = [];
  // Old enough for any minimum-release-age policy npm may be given.
  const published = "2020-01-01T00:00:00.000Z";
  server.on("request", (req, res) => {
    const path = decodeURIComponent((req.url ?? "/").split("?")[0] ?? "/");
    requests.push(path);
    const file = path.startsWith("/-/") ? files.get(path.slice(3)) : undefined;
    if (file) {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": file.length });
      res.end(file);
      return;
    }
    const packument = packuments.get(path.slice(1));
    if (!packument) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "not a runtime dependency of the plugin" }));
      return;
    }
    const name = path.slice(1);
    const time = Object.fromEntries(Object.keys(packument.versions).map((v) => [v, published]));
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        name,
        "dist-tags": { latest: packument.latest },
        versions: packument.versions,
        time: { created: published, modified: published, ...time },
      }),
    );
  });

  return {
    url,
    requests,
    packages: [...packuments.keys()].sort(),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

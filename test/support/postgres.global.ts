// vitest globalSetup of the registry-postgres project: one PostgreSQL server for the whole run (initdb and start
// cost seconds; a database per test costs milliseconds), its directory handed to the test files through
// provide/inject (see helpers.ts), stopped when the run ends.
import type { TestProject } from "vitest/node";
import { startPostgresServer } from "./postgres.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** Directory of the run's PostgreSQL server (its Unix socket is there); "" when none was started. */
    registryPostgresDir: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startPostgresServer();
  project.provide("registryPostgresDir", server.dir);
  return () => server.stop();
}

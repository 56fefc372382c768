// Keeps the deployment example in docs/deploy honest without running it: every YAML file parses, the compose
// file and the Kubernetes manifests have the pieces docs/deploy/README.md promises (PostgreSQL, a migration
// step before the replicas, three replicas with probes on /livez and /readyz, a proxy health-checking
// /readyz, a Secret for DATABASE_URL, a PodDisruptionBudget), and the `serve` flags they pass are flags the
// CLI accepts. The `yaml` package is vite's dependency, not ours: a parser only tests use.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { parseServeArgs } from "../../src/registry-server/cli.js";

const DEPLOY = fileURLToPath(new URL("../../docs/deploy/", import.meta.url));
const read = (path: string) => readFileSync(join(DEPLOY, path), "utf8");

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML is walked structurally; the assertions check its shape.
type Doc = any;

function parseYaml(path: string): Doc[] {
  const docs = parseAllDocuments(read(path), { merge: true, prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [docs];
  for (const doc of list) {
    expect(doc.errors, `${path}: ${doc.errors.map((e) => e.message).join("; ")}`).toEqual([]);
    expect(doc.warnings, `${path}: ${doc.warnings.map((e) => e.message).join("; ")}`).toEqual([]);
  }
  return list.map((doc) => doc.toJS({ maxAliasCount: 100 }) as Doc);
}

/** `serve` arguments as the CLI parses them; throws on a flag it does not know. */
function parsedServe(args: string[]) {
  expect(args[0]).toBe("serve");
  return parseServeArgs(args, {}, false);
}

describe("docs/deploy/compose", () => {
  const [compose] = parseYaml("compose/compose.yaml");
  const services = compose.services as Record<string, Doc>;
  const replicas = Object.keys(services).filter((name) => /^registry-\d$/.test(name));

  it("runs PostgreSQL, a one-shot migration after it, and three replicas after the migration", () => {
    expect(services.postgres.image).toMatch(/^postgres:/);
    expect(services.postgres.healthcheck.test.join(" ")).toContain("pg_isready");
    expect(services.migrate.command).toEqual(["migrate"]);
    expect(services.migrate.restart).toBe("no");
    expect(services.migrate.environment.DATABASE_URL).toMatch(/^postgres:\/\//);
    expect(services.migrate.depends_on.postgres.condition).toBe("service_healthy");
    expect(replicas).toHaveLength(3);
    for (const name of replicas) {
      const replica = services[name];
      expect(replica.depends_on.migrate.condition).toBe("service_completed_successfully");
      expect(replica.environment.DATABASE_URL).toMatch(/^postgres:\/\/registry:\$\{POSTGRES_PASSWORD/);
      const options = parsedServe(replica.command);
      expect(options.host).toBe("0.0.0.0");
      expect(replica.healthcheck.test.join(" ")).toContain(`127.0.0.1:${options.opsPort}/readyz`);
      // Docker's SIGKILL comes after stop_grace_period: the drain must fit in it.
      expect(options.drainDelayMs + options.drainTimeoutMs).toBeLessThan(
        Number.parseInt(replica.stop_grace_period, 10) * 1000,
      );
    }
  });

  it("puts Caddy in front, health-checking /readyz on each replica's operations port", () => {
    const proxy = services.proxy;
    expect(proxy.image).toMatch(/^caddy:/);
    expect(Object.keys(proxy.depends_on).sort()).toEqual(replicas.sort());
    const caddyfile = read("compose/Caddyfile");
    expect(caddyfile).toMatch(/reverse_proxy registry-1:8001 registry-2:8001 registry-3:8001/);
    expect(caddyfile).toMatch(/health_uri \/readyz\n\s*health_port 9090\n/);
    for (const name of replicas) expect(parsedServe(services[name].command).opsPort).toBe(9090);
  });

  it("keeps secrets out of the file: they come from .env, and .env.example holds placeholders", () => {
    const text = read("compose/compose.yaml");
    expect(text).not.toMatch(/POSTGRES_PASSWORD: [^$]/);
    expect(read("compose/.env.example")).toMatch(/^POSTGRES_PASSWORD=change-me/m);
  });
});

describe("docs/deploy/kubernetes", () => {
  const kustomization = parseYaml("kubernetes/kustomization.yaml")[0];
  const files = readdirSync(join(DEPLOY, "kubernetes")).filter((f) => f.endsWith(".yaml"));
  const manifests = files
    .filter((f) => f !== "kustomization.yaml")
    .flatMap((f) => parseYaml(`kubernetes/${f}`).map((doc) => ({ file: f, doc })));
  const byKind = (kind: string) => manifests.filter((m) => m.doc.kind === kind).map((m) => m.doc);

  it("lists every manifest in kustomization.yaml, each with apiVersion, kind and name", () => {
    expect([...kustomization.resources].sort()).toEqual(
      files.filter((f) => f !== "kustomization.yaml").sort(),
    );
    for (const { file, doc } of manifests) {
      expect(doc.apiVersion, file).toBeTruthy();
      expect(doc.kind, file).toBeTruthy();
      expect(doc.metadata?.name, file).toBeTruthy();
    }
  });

  it("runs three replicas with /livez liveness, /readyz readiness and a migration before the server", () => {
    const [deployment] = byKind("Deployment");
    expect(deployment.spec.replicas).toBe(3);
    const pod = deployment.spec.template.spec;
    expect(pod.initContainers.map((c: Doc) => c.args)).toEqual([["migrate"]]);
    const [container] = pod.containers;
    expect(container.livenessProbe.httpGet).toEqual({ path: "/livez", port: "ops" });
    expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "ops" });
    const options = parsedServe(container.args);
    expect(container.ports).toContainEqual(
      expect.objectContaining({ name: "http", containerPort: options.port }),
    );
    expect(container.ports).toContainEqual(
      expect.objectContaining({ name: "ops", containerPort: options.opsPort }),
    );
    expect(options.drainDelayMs + options.drainTimeoutMs).toBeLessThan(
      pod.terminationGracePeriodSeconds * 1000,
    );
    expect(deployment.spec.selector.matchLabels).toEqual(deployment.spec.template.metadata.labels);
  });

  it("takes DATABASE_URL and the keys from a Secret, never from the manifest itself", () => {
    const [secret] = byKind("Secret");
    expect(Object.keys(secret.stringData)).toEqual(
      expect.arrayContaining(["DATABASE_URL", "AGENT_REGISTRY_API_KEY", "AGENT_REGISTRY_ADMIN_KEY"]),
    );
    for (const value of Object.values(secret.stringData)) expect(String(value)).toMatch(/CHANGE-ME/);
    const pod = byKind("Deployment")[0].spec.template.spec;
    for (const container of [...pod.initContainers, ...pod.containers]) {
      expect(container.envFrom).toEqual([{ secretRef: { name: secret.metadata.name } }]);
      expect(container.env).toBeUndefined();
    }
  });

  it("has a Service and a PodDisruptionBudget selecting the replicas", () => {
    const labels = byKind("Deployment")[0].spec.template.metadata.labels;
    const [service] = byKind("Service");
    expect(service.spec.selector).toEqual(labels);
    expect(service.spec.ports.map((p: Doc) => p.targetPort)).toEqual(["http"]);
    const [pdb] = byKind("PodDisruptionBudget");
    expect(pdb.spec.selector.matchLabels).toEqual(labels);
    expect(pdb.spec.minAvailable).toBe(2);
  });
});

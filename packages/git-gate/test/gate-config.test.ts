import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type GitGatePlan, prepareGitGate, readGateConfig, writePlan } from "@bottle/git-gate";
import { parseManifest } from "@bottle/manifest";
import { testdir } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

const EXAMPLES = join(import.meta.dirname, "../../../examples");

/** Beside the examples: a token upstream, and scan rules and allowlist entries with every field. */
const TOKEN_AND_SCAN = [
  "version: 1",
  "name: docs",
  "agent: { command: [agent] }",
  "git_gate:",
  "  repos:",
  "    docs:",
  "      url: https://git.acme.example:8443/acme/docs.git",
  "      key: { provider: token, token_ref: DOCS_TOKEN, username: docs-bot }",
  "      push: { force_push: always, deletes: never }",
  "  scan:",
  "    scanner: builtin",
  "    max_blob_bytes: 4096",
  "    rules:",
  "      - { id: acme-key, regex: 'acme_[a-z0-9]{32}', description: Acme key, keywords: [acme_] }",
  "      - { id: bare, regex: 'x{40}' }",
  "    allowlist:",
  "      - { fingerprint: 'abc:file.txt:acme-key:3', reason: a test fixture }",
  "",
].join("\n");

/** Every manifest with a git gate: the examples, and {@link TOKEN_AND_SCAN}. */
async function manifests(): Promise<Array<[string, string]>> {
  const files = (await readdir(EXAMPLES)).filter((file) => /\.ya?ml$/.test(file));
  const texts: Array<[string, string]> = await Promise.all(
    files.map(
      async (file) => [file, await readFile(join(EXAMPLES, file), "utf8")] as [string, string],
    ),
  );
  return [
    ...texts.filter(([, text]) => /^git_gate:/m.test(text)),
    ["token-and-scan", TOKEN_AND_SCAN],
  ];
}

/** The plan of `text` written into a new stage directory. */
async function written(text: string): Promise<GitGatePlan> {
  const bottle = parseManifest(text, { checkFiles: false, baseDir: "/home/op/.config/bottle" });
  const plan = prepareGitGate(bottle, join(await testdir(), "stage"));
  writePlan(plan);
  return plan;
}

const gateJson = (plan: GitGatePlan) => join(plan.stateDir, "gate.json");

describe("gate.json", () => {
  it("reads back exactly what every plan of the example manifests wrote", async () => {
    const sources = await manifests();
    expect(sources.map(([name]) => name)).toEqual(["bottle.yaml", "claude.yaml", "token-and-scan"]);
    const kinds = new Set<string>();
    for (const [name, text] of sources) {
      const plan = await written(text);
      const { version, project, basePath, stateDir, repos, scan, timeouts } = plan;
      expect(readGateConfig(plan.stateDir), name).toEqual({
        version,
        project,
        basePath,
        stateDir,
        repos,
        scan,
        timeouts,
      });
      for (const repo of repos) kinds.add(repo.credential.source);
    }
    // Every credential variant went through the file, the GitHub App's name included.
    expect([...kinds].sort()).toEqual(["env", "gitea-deploy-key", "github-app", "static"]);
  });

  it("keeps the GitHub App a repository's tokens come from, and the repository they are for", async () => {
    const [, example] = (await manifests())[0] ?? [];
    const plan = await written(example ?? "");
    const docs = readGateConfig(plan.stateDir).repos.find((repo) => repo.name === "docs");
    expect(docs?.credential).toMatchObject({
      source: "github-app",
      app: "acme",
      repository: "acme/docs",
    });
  });

  it.each([
    ["the top level", []],
    ["a repository", ["repos", 0]],
    ["a credential", ["repos", 0, "credential"]],
    ["the push policy", ["repos", 0, "push"]],
    ["the scan settings", ["scan"]],
    ["a scan rule", ["scan", "rules", 0]],
    ["the time limits", ["timeouts"]],
  ] as const)("refuses an unknown key in %s (BTL_GITGATE_STATE)", async (_where, path) => {
    const plan = await written(TOKEN_AND_SCAN);
    expect(() => readGateConfig(plan.stateDir)).not.toThrow();
    const config = JSON.parse(await readFile(gateJson(plan), "utf8"));
    let target: Record<string | number, unknown> = config;
    for (const key of path) target = target[key] as typeof target;
    target.unknown = 1;
    await writeFile(gateJson(plan), JSON.stringify(config));
    expect(() => readGateConfig(plan.stateDir)).toThrow(
      expect.objectContaining({ code: "BTL_GITGATE_STATE" }),
    );
  });

  it("refuses a credential of no known source, and a file that is not JSON", async () => {
    const plan = await written(TOKEN_AND_SCAN);
    const config = JSON.parse(await readFile(gateJson(plan), "utf8"));
    config.repos[0].credential.source = "vault";
    await writeFile(gateJson(plan), JSON.stringify(config));
    expect(() => readGateConfig(plan.stateDir)).toThrow(
      expect.objectContaining({ code: "BTL_GITGATE_STATE" }),
    );
    await writeFile(gateJson(plan), "{");
    expect(() => readGateConfig(plan.stateDir)).toThrow(
      expect.objectContaining({ code: "BTL_GITGATE_STATE" }),
    );
  });
});

import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { createBaseEnv, expectNoCanary, makeCanary, runProcess, testdir } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

const BIN = join(import.meta.dirname, "../dist/cli.js");
const EXAMPLES = join(import.meta.dirname, "../../../examples");
const SCHEMA = join(import.meta.dirname, "../../../packages/manifest/schema.json");

/** A home directory with the secret files the realistic example names (mode 0600). */
async function home(): Promise<string> {
  const dir = await testdir();
  for (const rel of [".config/bottle/keys/acme-api", ".config/bottle/acme-app.pem"]) {
    await mkdir(dirname(join(dir, rel)), { recursive: true });
    await writeFile(join(dir, rel), "-----BEGIN PRIVATE KEY-----\n", { mode: 0o600 });
  }
  return dir;
}

async function bottle(args: string[], env: Record<string, string> = {}) {
  return runProcess(process.execPath, [BIN, ...args], {
    env: createBaseEnv({ HOME: await home(), ...env }),
  });
}

describe("bottle", { tags: ["slow"] }, () => {
  it("prints help with every command and the exit codes", async () => {
    const result = await bottle(["--help"]);
    expect(result.code).toBe(0);
    for (const word of ["validate", "plan", "schema", "Exit codes:", "3  environment"])
      expect(result.stdout).toContain(word);
  });

  it.each(["validate", "plan", "schema"])("prints help for %s", async (command) => {
    const result = await bottle([command, "--help"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`Usage: bottle ${command}`);
  });

  it("prints its version", async () => {
    const pkg = JSON.parse(
      await readFile(join(import.meta.dirname, "../package.json"), "utf8"),
    ) as { version: string };
    expect((await bottle(["--version"])).stdout.trim()).toBe(pkg.version);
  });

  it("answers an unknown command with BTL_CLI_USAGE and exit 2", async () => {
    const result = await bottle(["frobnicate"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^BTL_CLI_USAGE: unknown command 'frobnicate'/);
  });

  it("answers an unknown option with BTL_CLI_USAGE and exit 2", async () => {
    const result = await bottle(["plan", "--jsno", "x.yaml"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^BTL_CLI_USAGE: unknown option '--jsno'/);
  });

  it("validates every example", async () => {
    const result = await bottle([
      "validate",
      join(EXAMPLES, "bottle.yaml"),
      join(EXAMPLES, "minimal.yaml"),
    ]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      /^ok: .*bottle\.yaml \(project acme-api: 3 repositories, 6 proxy routes\)\nok: .*minimal\.yaml/,
    );
  });

  it("reports each issue as CODE: file:line:col and exits 2", async () => {
    const dir = await testdir({
      "b.yaml":
        "version: 1\nname: a\nagent: { command: [x] }\ngit_gate: { repos: {}, scan: { scaner: auto } }\n",
    });
    const result = await bottle(["validate", join(dir, "b.yaml")]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `BTL_MANIFEST_UNKNOWN_KEY: ${join(dir, "b.yaml")}:4:32: git_gate.scan.scaner: \`scaner\` is not a known key; did you mean \`scanner\`?\n`,
    );
  });

  it("checks every file and exits with the worst code", async () => {
    const dir = await testdir({ "bad.yaml": "version: 2\n" });
    const result = await bottle([
      "validate",
      join(dir, "missing.yaml"),
      join(dir, "bad.yaml"),
      join(EXAMPLES, "minimal.yaml"),
    ]);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(
      /^BTL_MANIFEST_READ: .*missing\.yaml: the manifest file does not exist\nBTL_MANIFEST_VERSION: /,
    );
    expect(result.stdout).toMatch(/^ok: .*minimal\.yaml/);
  });

  it("refuses a world-readable identity with exit 3, unless file checks are off", async () => {
    const dir = await testdir({ id: { content: "k", mode: 0o644 } });
    const text = `version: 1\nname: a\nagent: { command: [x] }\ngit_gate:\n  repos:\n    r:\n      url: git@h.example:r.git\n      host_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n      key: { provider: static, identity: ./id }\n`;
    await writeFile(join(dir, "b.yaml"), text);
    const refused = await bottle(["validate", join(dir, "b.yaml")]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/^BTL_MANIFEST_FILE_MODE: .*chmod 600/);
    expect((await bottle(["validate", "--no-file-checks", join(dir, "b.yaml")])).code).toBe(0);
  });

  it("plans: repos, upstreams, routes and host variables, never their values", async () => {
    const canary = makeCanary();
    const result = await bottle(["plan", "--json", join(EXAMPLES, "bottle.yaml")], {
      ANTHROPIC_API_KEY: canary,
      GITHUB_TOKEN: "",
      GITEA_ADMIN_TOKEN: canary,
    });
    expect(result.code).toBe(0);
    const plan = JSON.parse(result.stdout);
    expect(plan.repos.map((r: { served_as: string }) => r.served_as)).toEqual([
      "acme-api/api.git",
      "acme-api/infra.git",
      "acme-api/docs.git",
    ]);
    expect(plan.repos[0].host_key).toBe(
      "ssh-ed25519 SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU",
    );
    expect(plan.routes[2]).toEqual({
      path: "/gh-git/",
      upstream: "https://github.com",
      auth: "Basic x-access-token:<token>",
      slot: "BOTTLE_PROXY_TOKEN_1",
      roles: ["git-insteadof"],
    });
    const states = Object.fromEntries(
      plan.host_env.map((e: { name: string; state: string }) => [e.name, e.state]),
    );
    expect(states).toEqual({
      GITEA_ADMIN_TOKEN: "set",
      ANTHROPIC_API_KEY: "set",
      GITHUB_TOKEN: "empty",
      GITEA_TOKEN: "unset",
      NPM_TOKEN: "unset",
      SENTRY_TOKEN: "unset",
    });
    const human = await bottle(["plan", join(EXAMPLES, "bottle.yaml")], {
      ANTHROPIC_API_KEY: canary,
    });
    expect(human.stdout).toContain("host environment (values are never shown)");
    expect(human.stdout).toMatch(
      /ANTHROPIC_API_KEY\s+set\s+proxy BOTTLE_PROXY_TOKEN_0 \(\/anthropic\/\)/,
    );
    expectNoCanary(canary, result.stdout, result.stderr, human.stdout, human.stderr);
  });

  it("prints the shipped JSON Schema", async () => {
    const result = await bottle(["schema"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(await readFile(SCHEMA, "utf8"));
  });
});

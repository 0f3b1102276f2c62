import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type AgentSideInput, PLACEHOLDER_KEY, QUIET_SWITCHES, renderAgentSide } from "@bottle/cli";
import { prepareCredProxy, proxyTokenEnv } from "@bottle/cred-proxy";
import { prepareGitGate } from "@bottle/git-gate";
import { type Manifest, parseManifest } from "@bottle/manifest";
import { createBaseEnv, expectNoCanary, makeCanary, runProcess, testdir } from "@bottle/test-utils";
import { describe, expect, it, vi } from "vitest";

const EXAMPLES = join(import.meta.dirname, "../../../examples");
const GATE = "http://127.0.0.1:9419";
const PROXY = "http://127.0.0.1:9420";
const TOKEN = "bottle_gt_0123456789abcdefghijklmnopqrstuv";

function manifest(text: string): Manifest {
  return parseManifest(text, { filename: "bottle.yaml", checkFiles: false });
}

async function example(name: string): Promise<Manifest> {
  return manifest(await readFile(join(EXAMPLES, name), "utf8"));
}

/** The whole input for `m`: both plans (the gate's only when it declares repositories). */
function inputFor(m: Manifest, extra: Partial<AgentSideInput> = {}): AgentSideInput {
  const repos = m.git_gate === undefined ? 0 : Object.keys(m.git_gate.repos).length;
  return {
    manifest: m,
    gitGate: repos === 0 ? null : prepareGitGate(m, "/srv/bottle/stage", { gateUrl: GATE }),
    credProxy: prepareCredProxy(m),
    ...(repos === 0 ? {} : { gateToken: TOKEN, gateUrl: GATE }),
    proxyUrl: PROXY,
    ...extra,
  };
}

const small = (body: string) =>
  manifest(`version: 1\nname: acme\nagent: { command: [agent] }\n${body}`);

/** Runs the real git in a repository whose global config is the rendered `.gitconfig`. */
async function gitWith(gitconfig: string) {
  const home = await testdir({ ".gitconfig": gitconfig });
  const env = createBaseEnv({ HOME: home, GIT_CONFIG_NOSYSTEM: "1" });
  const run = async (...args: string[]) => {
    const result = await runProcess("git", args, { cwd: home, env });
    expect(result.code, result.stderr).toBe(0);
    return result.stdout.trim();
  };
  await run("init", "--quiet", "repo");
  /** The URL git uses for a remote named `url` (insteadOf expanded). */
  const resolve = async (url: string) => {
    await run("-C", "repo", "remote", "add", "r", url);
    const resolved = await run("-C", "repo", "remote", "get-url", "r");
    await run("-C", "repo", "remote", "remove", "r");
    return resolved;
  };
  return { run, resolve };
}

describe("renderAgentSide: the example manifests", () => {
  it("examples/bottle.yaml: every role's variables at the proxy, the switches, then agent.env", async () => {
    const side = renderAgentSide(inputFor(await example("bottle.yaml")));
    expect({ ...side.env }).toEqual({
      ANTHROPIC_BASE_URL: `${PROXY}/anthropic`,
      ANTHROPIC_API_KEY: PLACEHOLDER_KEY,
      npm_config_registry: `${PROXY}/npm/`,
      GITHUB_API_URL: `${PROXY}/gh-api`,
      GITHUB_GRAPHQL_URL: `${PROXY}/gh-api/graphql`,
      ...QUIET_SWITCHES,
      LANG: "C.UTF-8",
      TZ: "Europe/Berlin",
    });
    expect(Object.keys(side.homeFiles).sort()).toEqual([".claude.json", ".gitconfig", ".npmrc"]);
    expect(side.homeFiles[".npmrc"]).toBe(`registry=${PROXY}/npm/\n`);
    expect(Object.isFrozen(side.env) && Object.isFrozen(side.homeFiles)).toBe(true);
  });

  it("examples/bottle.yaml: git reads the .gitconfig as the plans say (identity, gate with token, forges at the proxy)", async () => {
    const input = inputFor(await example("bottle.yaml"));
    const gitconfig = renderAgentSide(input).homeFiles[".gitconfig"] ?? "";
    const git = await gitWith(gitconfig);
    expect(await git.run("config", "--global", "user.name")).toBe("Acme Agent");
    expect(await git.run("config", "--global", "user.email")).toBe("agent@acme.example");
    // Every spelling the git-gate plan lists, and nothing else, goes to its gate URL + token.
    const rules = (await git.run("config", "--global", "--get-regexp", "^url\\."))
      .split("\n")
      .map((line) => /^url\.(.*)\.insteadof (.*)$/.exec(line)?.slice(1) ?? []);
    const toGate = rules.filter(([base]) => base?.startsWith("http://bottle_gt_"));
    const expected = (input.gitGate?.repos ?? []).flatMap((repo) =>
      repo.insteadOf.map((spelling) => [
        repo.gateUrl.replace("http://", `http://${TOKEN}:x@`),
        spelling,
      ]),
    );
    expect(toGate.sort()).toEqual(expected.sort());
    expect(rules.filter(([base]) => base?.startsWith(`${PROXY}/`)).sort()).toEqual(
      [
        [`${PROXY}/gh-git/`, "https://github.com/"],
        [`${PROXY}/gh-git/`, "git@github.com:"],
        [`${PROXY}/gh-git/`, "ssh://git@github.com/"],
        [`${PROXY}/gitea/gitea.acme.example/`, "https://gitea.acme.example/"],
        [`${PROXY}/gitea/gitea.acme.example/`, "git@gitea.acme.example:"],
        [`${PROXY}/gitea/gitea.acme.example/`, "ssh://git@gitea.acme.example/"],
      ].sort(),
    );
    expect(rules).toHaveLength(toGate.length + 6);
    // git picks the longest match: declared repositories to the gate, the rest of a forge to
    // the proxy.
    const gate = `http://${TOKEN}:x@127.0.0.1:9419/acme-api`;
    expect(await git.resolve("git@github.com:acme/api.git")).toBe(`${gate}/api.git`);
    expect(await git.resolve("https://github.com/acme/docs")).toBe(`${gate}/docs.git`);
    expect(await git.resolve("ssh://git@gitea.acme.example:2222/acme/infra.git")).toBe(
      `${gate}/infra.git`,
    );
    expect(await git.resolve("git@github.com:acme/other.git")).toBe(
      `${PROXY}/gh-git/acme/other.git`,
    );
    expect(await git.resolve("https://gitea.acme.example/acme/wiki.git")).toBe(
      `${PROXY}/gitea/gitea.acme.example/acme/wiki.git`,
    );
    // No credential helper, nothing but the identity and the rewrites.
    const keys = (await git.run("config", "--global", "--list", "--name-only")).split("\n");
    expect(new Set(keys.map((key) => key.replace(/^url\..*\./, "url.*.")))).toEqual(
      new Set(["user.name", "user.email", "url.*.insteadof"]),
    );
  });

  it("examples/minimal.yaml: the Anthropic variables, the switches and an identity; no gate, no npm", async () => {
    const side = renderAgentSide(inputFor(await example("minimal.yaml")));
    expect({ ...side.env }).toEqual({
      ANTHROPIC_BASE_URL: `${PROXY}/anthropic`,
      ANTHROPIC_API_KEY: PLACEHOLDER_KEY,
      ...QUIET_SWITCHES,
    });
    expect(Object.keys(side.homeFiles).sort()).toEqual([".claude.json", ".gitconfig"]);
    expect(side.homeFiles[".gitconfig"]).toBe(
      '# generated by bottle for hello, do not edit\n[user]\n\tname = "bottle agent"\n\temail = "agent@bottle.invalid"\n',
    );
  });

  it("no proxy plan: the identity and the gate only, the switches, no client variables", () => {
    const m = small(
      "git_gate:\n  repos:\n    api: { url: 'https://git.acme.example/acme/api.git', key: { provider: token, token_ref: UP } }\n",
    );
    const side = renderAgentSide(inputFor(m, { credProxy: null }));
    expect({ ...side.env }).toEqual({ ...QUIET_SWITCHES });
    expect(Object.keys(side.homeFiles)).toEqual([".gitconfig"]);
    expect(side.homeFiles[".gitconfig"]).toContain(
      `[url "http://${TOKEN}:x@127.0.0.1:9419/acme/api.git"]`,
    );
  });
});

describe("renderAgentSide: per route role", () => {
  it("anthropic-base-url: .claude.json has Claude Code's onboarding done and the placeholder approved, nothing more", () => {
    const side = renderAgentSide(
      inputFor(
        small("cred_proxy:\n  tokens: [{ kind: anthropic, token_ref: K, auth: api-key }]\n"),
      ),
    );
    expect(JSON.parse(side.homeFiles[".claude.json"] ?? "")).toEqual({
      hasCompletedOnboarding: true,
      // Claude Code remembers an approved key by its last 20 characters.
      customApiKeyResponses: { approved: [PLACEHOLDER_KEY.slice(-20)], rejected: [] },
    });
    const npmOnly = renderAgentSide(
      inputFor(small("cred_proxy:\n  tokens: [{ kind: npm, token_ref: N }]\n")),
    );
    expect(npmOnly.homeFiles[".claude.json"]).toBeUndefined();
  });

  it("anthropic-base-url with an OAuth token: the same base URL and placeholder (the proxy sends Bearer)", () => {
    const m = small(
      "cred_proxy:\n  tokens: [{ kind: anthropic, token_ref: CLAUDE_OAUTH, auth: oauth }]\n",
    );
    const { env } = renderAgentSide(inputFor(m));
    expect([env.ANTHROPIC_BASE_URL, env.ANTHROPIC_API_KEY]).toEqual([
      `${PROXY}/anthropic`,
      PLACEHOLDER_KEY,
    ]);
    expect(env.ANTHROPIC_AUTH_TOKEN).toBeUndefined();
  });

  it("anthropic-base-url on a route of its own path, behind a proxy URL with a base path", () => {
    const m = small(
      "cred_proxy:\n  routes:\n    - { path: /llm/claude/, upstream: https://api.anthropic.com, auth: { header: x-api-key }, token_ref: KEY, roles: [anthropic-base-url] }\n",
    );
    const { env } = renderAgentSide(inputFor(m, { proxyUrl: "http://proxy.bottle:8080/base/" }));
    expect(env.ANTHROPIC_BASE_URL).toBe("http://proxy.bottle:8080/base/llm/claude");
  });

  it("npm-registry: npm_config_registry and a .npmrc with the registry line only", () => {
    const side = renderAgentSide(
      inputFor(small("cred_proxy:\n  tokens: [{ kind: npm, token_ref: NPM_TOKEN }]\n")),
    );
    expect(side.env.npm_config_registry).toBe(`${PROXY}/npm/`);
    expect(side.homeFiles[".npmrc"]).toBe(`registry=${PROXY}/npm/\n`);
    expect(side.env.ANTHROPIC_BASE_URL).toBeUndefined();
  });

  it("git-insteadof: a forge at the root of its host gets its SSH spellings, a base path does not", async () => {
    const m = small(
      [
        "cred_proxy:",
        "  tokens: [{ kind: github, token_ref: GH_TOKEN }]",
        "  routes:",
        "    - { path: /forge/, upstream: 'https://git.example/scm', auth: { scheme: Basic, username: x }, token_ref: FORGE, roles: [git-insteadof] }",
        "",
      ].join("\n"),
    );
    const side = renderAgentSide(inputFor(m));
    expect(side.env.GITHUB_API_URL).toBe(`${PROXY}/gh-api`);
    const git = await gitWith(side.homeFiles[".gitconfig"] ?? "");
    expect(await git.resolve("git@github.com:o/r.git")).toBe(`${PROXY}/gh-git/o/r.git`);
    expect(await git.resolve("ssh://git@github.com/o/r")).toBe(`${PROXY}/gh-git/o/r`);
    expect(await git.resolve("https://github.com/o/r.git")).toBe(`${PROXY}/gh-git/o/r.git`);
    expect(await git.resolve("https://git.example/scm/o/r.git")).toBe(`${PROXY}/forge/o/r.git`);
    expect(await git.resolve("git@git.example:o/r.git")).toBe("git@git.example:o/r.git");
  });

  it("a GitHub Enterprise API route sets no GitHub API variables (they describe api.github.com)", () => {
    const m = small(
      "cred_proxy:\n  tokens: [{ kind: github, token_ref: GH, api: 'https://ghe.example/api/v3', web: 'https://ghe.example' }]\n",
    );
    const { env } = renderAgentSide(inputFor(m));
    expect(env.GITHUB_API_URL).toBeUndefined();
    expect(env.GITHUB_GRAPHQL_URL).toBeUndefined();
  });

  it("quotes the identity for git: quotes and backslashes survive, read back by git", async () => {
    const m = small(
      'git_gate:\n  user: { name: "Ada \\"the\\" Agent \\\\ 2", email: ada@acme.example }\n  repos:\n    api: { url: "https://git.acme.example/acme/api.git", key: { provider: token, token_ref: UP } }\n',
    );
    const git = await gitWith(renderAgentSide(inputFor(m)).homeFiles[".gitconfig"] ?? "");
    expect(await git.run("config", "--global", "user.name")).toBe('Ada "the" Agent \\ 2');
  });
});

describe("renderAgentSide: agent.env", () => {
  it("may repeat a variable bottle sets with the same value", () => {
    const m = manifest(
      "version: 1\nname: acme\nagent: { command: [agent], env: { DO_NOT_TRACK: '1', EDITOR: vi } }\ncred_proxy:\n  tokens: [{ kind: npm, token_ref: N }]\n",
    );
    expect(renderAgentSide(inputFor(m)).env).toMatchObject({ DO_NOT_TRACK: "1", EDITOR: "vi" });
  });

  it.each([
    ["ANTHROPIC_BASE_URL", "https://api.anthropic.com"],
    ["GITHUB_API_URL", "https://api.github.com"],
    ["NPM_CONFIG_REGISTRY", "https://registry.npmjs.org/"],
    ["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "0"],
  ])("refuses %s changed: BTL_CLI_AGENT_ENV, without echoing the value", (name, value) => {
    const m = manifest(
      `version: 1\nname: acme\nagent: { command: [agent], env: { ${name}: '${value}' } }\ncred_proxy:\n  tokens: [{ kind: anthropic, token_ref: K, auth: api-key }, { kind: npm, token_ref: N }, { kind: github, token_ref: G }]\n`,
    );
    let error: unknown;
    try {
      renderAgentSide(inputFor(m));
    } catch (caught) {
      error = caught;
    }
    expect(error).toMatchObject({ code: "BTL_CLI_AGENT_ENV" });
    expect(String((error as Error).message)).not.toContain(value);
  });
});

describe("renderAgentSide: inputs that do not fit", () => {
  const withRepo = () =>
    small(
      "git_gate:\n  repos:\n    api: { url: 'https://git.acme.example/acme/api.git', key: { provider: token, token_ref: UP } }\n",
    );

  it.each<[string, Partial<AgentSideInput>]>([
    ["a gate token with a space", { gateToken: "bottle_gt_a b" }],
    ["a gate token with a newline", { gateToken: "bottle_gt_a\n[core]" }],
    ["a plan made for another gate URL", { gateUrl: "http://127.0.0.1:9999" }],
    ["a proxy URL with credentials", { proxyUrl: "http://user:pw@127.0.0.1:9420" }],
    ["a proxy URL with a query", { proxyUrl: "http://127.0.0.1:9420/?x=1" }],
    ["a gate URL that is not http", { gateUrl: "file:///srv/gate" }],
  ])("refuses %s: BTL_CLI_AGENT_CONFIG", (_, extra) => {
    const input = { ...inputFor(withRepo()), ...extra };
    expect(() => renderAgentSide(input)).toThrow(
      expect.objectContaining({ code: "BTL_CLI_AGENT_CONFIG" }),
    );
  });

  it("refuses a git-gate plan without the task's gate token: BTL_CLI_AGENT_CONFIG", () => {
    const { gateToken: _, ...input } = inputFor(withRepo());
    expect(() => renderAgentSide(input)).toThrow(
      expect.objectContaining({ code: "BTL_CLI_AGENT_CONFIG" }),
    );
    expect(() => renderAgentSide({ ...input, gateToken: null })).toThrow(
      expect.objectContaining({ code: "BTL_CLI_AGENT_CONFIG" }),
    );
  });

  it("refuses two routes rewriting one upstream (git would pick either): BTL_CLI_AGENT_CONFIG", () => {
    const m = small(
      "cred_proxy:\n  tokens: [{ kind: github, token_ref: GH }]\n  routes:\n    - { path: /gh2/, upstream: https://github.com, auth: { scheme: Bearer }, token_ref: GH2, roles: [git-insteadof] }\n",
    );
    expect(() => renderAgentSide(inputFor(m))).toThrow(
      expect.objectContaining({ code: "BTL_CLI_AGENT_CONFIG" }),
    );
  });
});

describe("renderAgentSide: secrets", () => {
  it("no value of any host variable a token_ref names appears in any output; the gate token only in .gitconfig", async () => {
    const refs = [
      "ANTHROPIC_API_KEY",
      "GITHUB_TOKEN",
      "GITEA_TOKEN",
      "NPM_TOKEN",
      "SENTRY_TOKEN",
      "GITEA_ADMIN_TOKEN",
    ];
    const canaries = Object.fromEntries(refs.map((ref) => [ref, makeCanary(ref.toLowerCase())]));
    for (const [ref, value] of Object.entries(canaries)) vi.stubEnv(ref, value);
    const m = await example("bottle.yaml");
    const plan = prepareCredProxy(m);
    // The values are there to be read: the proxy's environment holds them.
    expect(Object.values(proxyTokenEnv(plan, process.env)).sort()).toEqual(
      refs
        .filter((ref) => ref !== "GITEA_ADMIN_TOKEN")
        .map((ref) => canaries[ref])
        .sort(),
    );
    const gateToken = makeCanary("bottle_gt");
    const side = renderAgentSide(inputFor(m, { gateToken }));
    const outputs = [JSON.stringify(side.env), ...Object.values(side.homeFiles)];
    for (const canary of Object.values(canaries)) expectNoCanary(canary, ...outputs);
    expect(side.homeFiles[".gitconfig"]).toContain(`http://${gateToken}:x@127.0.0.1:9419/`);
    expectNoCanary(
      gateToken,
      JSON.stringify(side.env),
      ...Object.entries(side.homeFiles)
        .filter(([name]) => name !== ".gitconfig")
        .map(([, text]) => text),
    );
  });
});

import { codes, isLoopbackHost, MAX_MANIFEST_BYTES, parseGitUrl } from "@bottle/manifest";
import { describe, expect, it } from "vitest";
import { GITHUB_HOST_KEY, manifest, parse, parseError } from "./helpers.ts";

describe("valid manifests", () => {
  const cases: Array<[string, string]> = [
    ["the minimal manifest", manifest()],
    ["a JSON manifest", JSON.stringify({ version: 1, name: "j", agent: { command: ["x"] } })],
    ["an explicit workdir and image", manifest("  workdir: /src\n  image: node:24\n")],
    ["non-secret agent env", manifest("  env: { LANG: C.UTF-8, HOME_DIR: /home/a }\n")],
    [
      "an scp-style SSH repo with a pinned key",
      manifest(
        `git_gate:\n  repos:\n    api:\n      url: git@github.com:acme/api.git\n      host_key: ${GITHUB_HOST_KEY}\n      key: { provider: static, identity: /k }\n`,
      ),
    ],
    [
      "an https repo with a token",
      manifest(
        "git_gate:\n  repos:\n    docs:\n      url: https://github.com/a/d.git\n      key: { provider: token, token_ref: GH }\n",
      ),
    ],
    [
      "an http upstream on loopback",
      manifest(
        "cred_proxy:\n  routes:\n    - { path: /t/, upstream: 'http://127.0.0.1:8080', auth: { scheme: token }, token_ref: T }\n",
      ),
    ],
    [
      "routes sharing a token",
      manifest(
        "cred_proxy:\n  routes:\n    - { path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, token_ref: T }\n    - { path: /b/, upstream: 'https://b.example', auth: { header: x-token }, token_ref: T }\n",
      ),
    ],
    [
      "a route whose token is a GitHub App installation token",
      manifest(
        "cred_proxy:\n  routes:\n    - path: /gh/\n      upstream: https://api.github.com\n      auth: { scheme: Bearer }\n      github_app: { app: acme, repository: acme/api, permissions: { contents: read, pull_requests: write } }\ngithub_apps:\n  acme: { app_id: 1, private_key: /k }\n",
      ),
    ],
    [
      "a route with allow rules and git pushes to an upstream the gate does not serve",
      manifest(
        "cred_proxy:\n  routes:\n    - path: /gh/\n      upstream: https://api.github.com\n      auth: { scheme: Bearer }\n      token_ref: T\n      allow: [{ methods: [GET, HEAD], paths: ['/repos/acme/*/pulls/**', '/user', '/@acme%2fpkg'] }]\n    - { path: /git/, upstream: 'https://git.example', auth: { scheme: Basic, username: x }, token_ref: T, git_push: true }\n",
      ),
    ],
    [
      "a read-only route",
      route(
        "{ path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, token_ref: T, read_only: true }",
      ),
    ],
    ["a $schema key for editors", `$schema: ./schema.json\n${manifest()}`],
    ["an anchor and alias", `version: 1\nname: a\nagent: &a\n  command: [claude]\n`],
  ];
  it.each(cases)("accepts %s", (_, text) => {
    expect(parse(text).version).toBe(1);
  });

  it("applies the documented defaults", () => {
    const m = parse(
      manifest(
        "git_gate:\n  repos:\n    d:\n      url: https://h.example/a/d.git\n      key: { provider: token, token_ref: GH }\n",
      ),
    );
    expect(m.agent.workdir).toBe("/workspace");
    expect(m.git_gate?.scan.scanner).toBe("auto");
    expect(m.git_gate?.repos.d?.push).toEqual({
      force_push: "except-default",
      deletes: "except-default",
    });
    expect(m.git_gate?.repos.d?.key).toEqual({
      provider: "token",
      token_ref: "GH",
      username: "x-access-token",
    });
  });

  it("returns a deeply frozen manifest", () => {
    const m = parse(manifest());
    expect(Object.isFrozen(m)).toBe(true);
    expect(Object.isFrozen(m.agent.command)).toBe(true);
  });
});

type Case = [name: string, text: string, code: string, path: string, line?: number];
const repo = (body: string) => manifest(`git_gate:\n  repos:\n    api:\n${body}`);
const route = (body: string) => manifest(`cred_proxy:\n  routes:\n    - ${body}\n`);

describe("invalid manifests", () => {
  const cases: Case[] = [
    ["a missing version", "name: a\nagent: { command: [x] }\n", codes.BTL_MANIFEST_VERSION, ""],
    ["version 2", "version: 2\nname: a\n", codes.BTL_MANIFEST_VERSION, "version", 1],
    ["a list at the top", "- a\n- b\n", codes.BTL_MANIFEST_PARSE, ""],
    ["an empty document", "", codes.BTL_MANIFEST_PARSE, ""],
    ["a YAML syntax error", "version: 1\nname: [a\n", codes.BTL_MANIFEST_PARSE, ""],
    ["duplicate keys", "version: 1\nname: a\nname: b\n", codes.BTL_MANIFEST_DUPLICATE_KEY, "", 3],
    ["two documents", `${manifest()}---\n${manifest()}`, codes.BTL_MANIFEST_PARSE, ""],
    ["an unknown tag", `${manifest()}x: !!js/function 'f'\n`, codes.BTL_MANIFEST_PARSE, ""],
    [
      "an unknown top-level key",
      manifest("agnet: {}\n"),
      codes.BTL_MANIFEST_UNKNOWN_KEY,
      "agnet",
      5,
    ],
    [
      "a missing name",
      "version: 1\nagent: { command: [x] }\n",
      codes.BTL_MANIFEST_MISSING_KEY,
      "name",
    ],
    [
      "a name that is not a slug",
      manifest().replace("demo", "Demo_1"),
      codes.BTL_MANIFEST_INVALID,
      "name",
      2,
    ],
    [
      "an empty command",
      "version: 1\nname: a\nagent: { command: [] }\n",
      codes.BTL_MANIFEST_INVALID,
      "agent.command",
      3,
    ],
    [
      "a relative workdir",
      manifest("  workdir: src\n"),
      codes.BTL_MANIFEST_INVALID,
      "agent.workdir",
      5,
    ],
    [
      "a command word with a newline",
      'version: 1\nname: a\nagent: { command: ["a\\nb"] }\n',
      codes.BTL_MANIFEST_INVALID,
      "agent.command[0]",
    ],
    [
      "a credential in agent.env",
      manifest("  env: { OPENAI_API_KEY: x }\n"),
      codes.BTL_MANIFEST_CREDENTIAL_ENV,
      "agent.env.OPENAI_API_KEY",
      5,
    ],
    [
      "a password in agent.env",
      manifest("  env: { db_password: x }\n"),
      codes.BTL_MANIFEST_CREDENTIAL_ENV,
      "agent.env.db_password",
    ],
    [
      "an SSH repo without a host key",
      repo("      url: ssh://git@h.example/a.git\n      key: { provider: static, identity: /k }\n"),
      codes.BTL_MANIFEST_HOST_KEY,
      "git_gate.repos.api.host_key",
    ],
    [
      "a host key that is not a key",
      repo(
        "      url: git@h.example:a.git\n      host_key: ssh-ed25519 AAAA\n      key: { provider: static, identity: /k }\n",
      ),
      codes.BTL_MANIFEST_HOST_KEY,
      "git_gate.repos.api.host_key",
      9,
    ],
    [
      "a host key on an https repo",
      repo(
        `      url: https://h.example/a.git\n      host_key: ${GITHUB_HOST_KEY}\n      key: { provider: token, token_ref: T }\n`,
      ),
      codes.BTL_MANIFEST_INVALID,
      "git_gate.repos.api.host_key",
    ],
    [
      "a token key on an SSH repo",
      repo(
        `      url: git@h.example:a.git\n      host_key: ${GITHUB_HOST_KEY}\n      key: { provider: token, token_ref: T }\n`,
      ),
      codes.BTL_MANIFEST_INVALID,
      "git_gate.repos.api.key.provider",
    ],
    [
      "an unknown key provider",
      repo("      url: https://h.example/a.git\n      key: { provider: vault }\n"),
      codes.BTL_MANIFEST_INVALID,
      "git_gate.repos.api.key.provider",
    ],
    [
      "a key without provider",
      repo("      url: https://h.example/a.git\n      key: { token_ref: T }\n"),
      codes.BTL_MANIFEST_MISSING_KEY,
      "git_gate.repos.api.key.provider",
    ],
    [
      "an ftp upstream",
      repo("      url: ftp://h.example/a.git\n      key: { provider: token, token_ref: T }\n"),
      codes.BTL_MANIFEST_INVALID,
      "git_gate.repos.api.url",
      8,
    ],
    [
      "an http repo off loopback",
      repo("      url: http://h.example/a.git\n      key: { provider: token, token_ref: T }\n"),
      codes.BTL_MANIFEST_INVALID,
      "git_gate.repos.api.url",
    ],
    [
      "a repo url with a dot segment",
      repo(
        "      url: https://h.example/a/../b.git\n      key: { provider: token, token_ref: T }\n",
      ),
      codes.BTL_MANIFEST_INVALID,
      "git_gate.repos.api.url",
    ],
    [
      "a repo url with credentials",
      repo(
        "      url: https://u:p@h.example/a.git\n      key: { provider: token, token_ref: T }\n",
      ),
      codes.BTL_MANIFEST_INVALID,
      "git_gate.repos.api.url",
    ],
    [
      "a repo named like a path",
      manifest(
        "git_gate:\n  repos:\n    ../x:\n      url: https://h.example/a.git\n      key: { provider: token, token_ref: T }\n",
      ),
      codes.BTL_MANIFEST_INVALID,
      "git_gate.repos.../x",
    ],
    [
      "a repo named with .git",
      manifest(
        "git_gate:\n  repos:\n    a.git:\n      url: https://h.example/a.git\n      key: { provider: token, token_ref: T }\n",
      ),
      codes.BTL_MANIFEST_INVALID,
      "git_gate.repos.a.git",
    ],
    [
      "repos differing in case",
      manifest(
        "git_gate:\n  repos:\n    a:\n      url: https://h.example/a.git\n      key: { provider: token, token_ref: T }\n    A:\n      url: https://h.example/b.git\n      key: { provider: token, token_ref: T }\n",
      ),
      codes.BTL_MANIFEST_CONFLICT,
      "git_gate.repos.A",
    ],
    [
      "an undeclared app",
      repo("      url: https://h.example/a.git\n      key: { provider: github-app, app: acme }\n"),
      codes.BTL_MANIFEST_REFERENCE,
      "git_gate.repos.api.key.app",
    ],
    [
      "a bad push policy",
      repo(
        "      url: https://h.example/a.git\n      key: { provider: token, token_ref: T }\n      push: { force_push: yes }\n",
      ),
      codes.BTL_MANIFEST_INVALID,
      "git_gate.repos.api.push.force_push",
    ],
    [
      "a bad scanner",
      manifest("git_gate:\n  repos: {}\n  scan: { scanner: trufflehog }\n"),
      codes.BTL_MANIFEST_INVALID,
      "git_gate.scan.scanner",
    ],
    [
      "a scan rule that does not compile",
      manifest("git_gate:\n  repos: {}\n  scan: { rules: [{ id: r, regex: '(' }] }\n"),
      codes.BTL_MANIFEST_INVALID,
      "git_gate.scan.rules[0].regex",
    ],
    [
      "two scan rules with one id",
      manifest(
        "git_gate:\n  repos: {}\n  scan: { rules: [{ id: r, regex: a }, { id: r, regex: b }] }\n",
      ),
      codes.BTL_MANIFEST_CONFLICT,
      "git_gate.scan.rules[1].id",
    ],
    [
      "an allowlist entry without reason",
      manifest("git_gate:\n  repos: {}\n  scan: { allowlist: [{ fingerprint: abc }] }\n"),
      codes.BTL_MANIFEST_MISSING_KEY,
      "git_gate.scan.allowlist[0].reason",
    ],
    [
      "a route path without slashes",
      route(
        "{ path: anthropic, upstream: 'https://a.example', auth: { scheme: Bearer }, token_ref: T }",
      ),
      codes.BTL_MANIFEST_INVALID,
      "cred_proxy.routes[0].path",
    ],
    [
      "a route path with a dot segment",
      route(
        "{ path: /a/../, upstream: 'https://a.example', auth: { scheme: Bearer }, token_ref: T }",
      ),
      codes.BTL_MANIFEST_INVALID,
      "cred_proxy.routes[0].path",
    ],
    [
      "a route to http off loopback",
      route("{ path: /a/, upstream: 'http://a.example', auth: { scheme: Bearer }, token_ref: T }"),
      codes.BTL_MANIFEST_INVALID,
      "cred_proxy.routes[0].upstream",
    ],
    [
      "a route upstream with a query",
      route(
        "{ path: /a/, upstream: 'https://a.example/?x=1', auth: { scheme: Bearer }, token_ref: T }",
      ),
      codes.BTL_MANIFEST_INVALID,
      "cred_proxy.routes[0].upstream",
    ],
    [
      "Basic auth without a username",
      route("{ path: /a/, upstream: 'https://a.example', auth: { scheme: Basic }, token_ref: T }"),
      codes.BTL_MANIFEST_INVALID,
      "cred_proxy.routes[0].auth",
    ],
    [
      "an auth header that is a protocol header",
      route("{ path: /a/, upstream: 'https://a.example', auth: { header: Host }, token_ref: T }"),
      codes.BTL_MANIFEST_INVALID,
      "cred_proxy.routes[0].auth.header",
    ],
    [
      "a token_ref that is not a variable name",
      route(
        "{ path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, token_ref: 'sk-ant-123' }",
      ),
      codes.BTL_MANIFEST_INVALID,
      "cred_proxy.routes[0].token_ref",
    ],
    [
      "a token_ref holding a GitHub token",
      route(
        "{ path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, token_ref: ghp_0123456789abcdefghij }",
      ),
      codes.BTL_MANIFEST_INVALID,
      "cred_proxy.routes[0].token_ref",
    ],
    [
      "an unknown role",
      route(
        "{ path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, token_ref: T, roles: [root] }",
      ),
      codes.BTL_MANIFEST_INVALID,
      "cred_proxy.routes[0].roles[0]",
    ],
    [
      "a route with neither token_ref nor github_app",
      route("{ path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer } }"),
      codes.BTL_MANIFEST_MISSING_KEY,
      "cred_proxy.routes[0]",
    ],
    [
      "a route with both token_ref and github_app",
      `${route(
        "{ path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, token_ref: T, github_app: { app: acme, repository: acme/api } }",
      )}github_apps:\n  acme: { app_id: 1, private_key: /k }\n`,
      codes.BTL_MANIFEST_CONFLICT,
      "cred_proxy.routes[0].github_app",
    ],
    [
      "a github_app route naming an undeclared app",
      route(
        "{ path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, github_app: { app: acme, repository: acme/api } }",
      ),
      codes.BTL_MANIFEST_REFERENCE,
      "cred_proxy.routes[0].github_app.app",
    ],
    [
      "a github_app repository that is not owner/name",
      route(
        "{ path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, github_app: { app: acme, repository: api } }",
      ),
      codes.BTL_MANIFEST_INVALID,
      "cred_proxy.routes[0].github_app.repository",
    ],
    [
      "a github_app repository with a dot segment",
      route(
        "{ path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, github_app: { app: acme, repository: acme/.. } }",
      ),
      codes.BTL_MANIFEST_INVALID,
      "cred_proxy.routes[0].github_app.repository",
    ],
    [
      "a github_app permission level beyond write",
      route(
        "{ path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, github_app: { app: acme, repository: acme/api, permissions: { contents: admin } } }",
      ),
      codes.BTL_MANIFEST_INVALID,
      "cred_proxy.routes[0].github_app.permissions.contents",
    ],
    [
      "an empty github_app permission set",
      route(
        "{ path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, github_app: { app: acme, repository: acme/api, permissions: {} } }",
      ),
      codes.BTL_MANIFEST_INVALID,
      "cred_proxy.routes[0].github_app.permissions",
    ],
    [
      "an unknown key in github_app",
      route(
        "{ path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, github_app: { app: acme, repository: acme/api, permission: { contents: read } } }",
      ),
      codes.BTL_MANIFEST_UNKNOWN_KEY,
      "cred_proxy.routes[0].github_app.permission",
    ],
    [
      "two routes with one path",
      manifest(
        "cred_proxy:\n  tokens: [{ kind: npm, token_ref: N }]\n  routes:\n    - { path: /npm/, upstream: 'https://a.example', auth: { scheme: Bearer }, token_ref: T }\n",
      ),
      codes.BTL_MANIFEST_CONFLICT,
      "cred_proxy.routes[0]",
    ],
    [
      "a route inside another",
      manifest(
        "cred_proxy:\n  routes:\n    - { path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, token_ref: T }\n    - { path: /a/b/, upstream: 'https://b.example', auth: { scheme: Bearer }, token_ref: T }\n",
      ),
      codes.BTL_MANIFEST_CONFLICT,
      "cred_proxy.routes[1]",
    ],
    [
      "an exclusive role twice",
      manifest(
        "cred_proxy:\n  tokens: [{ kind: anthropic, token_ref: A, auth: api-key }]\n  routes:\n    - { path: /b/, upstream: 'https://b.example', auth: { scheme: Bearer }, token_ref: T, roles: [anthropic-base-url] }\n",
      ),
      codes.BTL_MANIFEST_CONFLICT,
      "cred_proxy.routes[0]",
    ],
    [
      "one variable as two kinds of token",
      manifest(
        "cred_proxy:\n  tokens:\n    - { kind: npm, token_ref: T }\n    - { kind: github, token_ref: T }\n",
      ),
      codes.BTL_MANIFEST_CONFLICT,
      "cred_proxy.tokens[1].token_ref",
    ],
    [
      "an anthropic token without auth",
      manifest("cred_proxy:\n  tokens: [{ kind: anthropic, token_ref: A }]\n"),
      codes.BTL_MANIFEST_MISSING_KEY,
      "cred_proxy.tokens[0].auth",
    ],
    [
      "an unknown token kind",
      manifest("cred_proxy:\n  tokens: [{ kind: openai, token_ref: A }]\n"),
      codes.BTL_MANIFEST_INVALID,
      "cred_proxy.tokens[0].kind",
    ],
    [
      "a gitea token without url",
      manifest("cred_proxy:\n  tokens: [{ kind: gitea, token_ref: A }]\n"),
      codes.BTL_MANIFEST_MISSING_KEY,
      "cred_proxy.tokens[0].url",
    ],
    [
      "read_only and allow on one route",
      route(
        "{ path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, token_ref: T, read_only: true, allow: [{ methods: [GET], paths: ['/**'] }] }",
      ),
      codes.BTL_MANIFEST_CONFLICT,
      "cred_proxy.routes[0].read_only",
    ],
    ...[
      ["an empty segment", "/repos//pulls"],
      ["a trailing slash", "/repos/"],
      ["a dot segment", "/repos/../contents"],
      ["a dot segment at the end", "/repos/."],
      ["a partial wildcard", "/repos/acme-*"],
      ["a relative glob", "repos/**"],
      ["a space", "/repos/a b"],
      ["a non-ASCII character", "/repos/\u00e4"],
      ["a query", "/repos?x=1"],
      ["a malformed escape", "/repos/%zz"],
    ].map(
      ([what, glob]): Case => [
        `an allow glob with ${what}`,
        route(
          `{ path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, token_ref: T, allow: [{ methods: [GET], paths: ["${glob}"] }] }`,
        ),
        codes.BTL_MANIFEST_INVALID,
        "cred_proxy.routes[0].allow[0].paths[0]",
      ],
    ),
    [
      "an allow rule naming TRACE",
      route(
        "{ path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, token_ref: T, allow: [{ methods: [TRACE], paths: ['/**'] }] }",
      ),
      codes.BTL_MANIFEST_INVALID,
      "cred_proxy.routes[0].allow[0].methods[0]",
    ],
    [
      "an allow rule without paths",
      route(
        "{ path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, token_ref: T, allow: [{ methods: [GET] }] }",
      ),
      codes.BTL_MANIFEST_MISSING_KEY,
      "cred_proxy.routes[0].allow[0].paths",
    ],
    [
      "an empty allow list",
      route(
        "{ path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, token_ref: T, allow: [] }",
      ),
      codes.BTL_MANIFEST_INVALID,
      "cred_proxy.routes[0].allow",
    ],
    [
      "git_push on a token short form",
      manifest("cred_proxy:\n  tokens: [{ kind: github, token_ref: G, git_push: true }]\n"),
      codes.BTL_MANIFEST_UNKNOWN_KEY,
      "cred_proxy.tokens[0].git_push",
    ],
    [
      "a provisioner token proxied to the agent",
      manifest(
        `git_gate:\n  repos:\n    i:\n      url: git@g.example:a/i.git\n      host_key: ${GITHUB_HOST_KEY}\n      key: { provider: gitea, api: 'https://g.example', token_ref: ADMIN }\ncred_proxy:\n  tokens: [{ kind: gitea, token_ref: ADMIN, url: 'https://g.example' }]\n`,
      ),
      codes.BTL_MANIFEST_CONFLICT,
      "git_gate.repos.i.key.token_ref",
    ],
    [
      "a __proto__ key",
      `__proto__: { a: 1 }\n${manifest()}`,
      codes.BTL_MANIFEST_INVALID,
      "__proto__",
      1,
    ],
    [
      "a repo named constructor",
      manifest(
        "git_gate:\n  repos:\n    constructor:\n      url: https://h.example/a.git\n      key: { provider: token, token_ref: T }\n",
      ),
      codes.BTL_MANIFEST_INVALID,
      "git_gate.repos.constructor",
      7,
    ],
    [
      "an env var named __proto__",
      manifest("  env: { __proto__: x }\n"),
      codes.BTL_MANIFEST_INVALID,
      "agent.env.__proto__",
      5,
    ],
    [
      "an app without an id",
      manifest("github_apps:\n  a: { private_key: /k }\n"),
      codes.BTL_MANIFEST_MISSING_KEY,
      "github_apps.a",
    ],
    [
      "an app with a bad client id",
      manifest("github_apps:\n  a: { client_id: abc, private_key: /k }\n"),
      codes.BTL_MANIFEST_INVALID,
      "github_apps.a.client_id",
    ],
  ];

  it.each(cases)("refuses %s", (_, text, code, path, line) => {
    const error = parseError(text);
    expect(error.code).toBe(code);
    expect(error.issues[0]?.path).toBe(path);
    if (line !== undefined) expect(error.issues[0]?.line).toBe(line);
    expect(error.message).toMatch(/^bottle\.yaml/);
  });

  it("says which token source a route lacks, has twice, or names without declaring", () => {
    const missing = parseError(
      route("{ path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer } }"),
    );
    expect(missing.message).toContain(
      "cred_proxy.routes[0]: needs `token_ref` (a host variable holding the token) or `github_app`",
    );
    const undeclared = parseError(
      `${route(
        "{ path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, github_app: { app: acme, repository: acme/api } }",
      )}github_apps:\n  other: { app_id: 1, private_key: /k }\n`,
    );
    expect(undeclared.message).toContain(
      "names app `acme`, which github_apps does not declare (declared: other)",
    );
  });

  it("reports every issue at once, in source order", () => {
    const error = parseError(manifest("  workdir: rel\n  env: { A_TOKEN: x }\nagnet: 1\n"));
    expect(error.issues.map((i) => i.code)).toEqual([
      codes.BTL_MANIFEST_INVALID,
      codes.BTL_MANIFEST_UNKNOWN_KEY,
    ]);
    expect(error.issues.map((i) => i.line)).toEqual([5, 7]);
  });

  it("suggests the key that was meant", () => {
    const error = parseError(manifest("git_gate:\n  repos: {}\n  scan: { scaner: auto }\n"));
    expect(error.issues[0]).toMatchObject({
      code: codes.BTL_MANIFEST_UNKNOWN_KEY,
      path: "git_gate.scan.scaner",
      line: 7,
      column: 11,
    });
    expect(error.message).toContain("did you mean `scanner`?");
  });

  it("suggests the value that was meant", () => {
    const error = parseError(manifest("git_gate:\n  repos: {}\n  scan: { scanner: gitleak }\n"));
    expect(error.message).toContain("did you mean `gitleaks`?");
  });

  it("names the position as file:line:column", () => {
    const error = parseError(manifest("agnet: 1\n"));
    expect(error.message).toBe(
      "bottle.yaml:5:1: agnet: `agnet` is not a known key; did you mean `agent`?",
    );
  });

  it("places issues in JSON input too", () => {
    const error = parseError(
      '{\n  "version": 1,\n  "name": "a",\n  "agent": { "command": ["x"] },\n  "extra": true\n}',
    );
    expect(error.issues[0]).toMatchObject({
      code: codes.BTL_MANIFEST_UNKNOWN_KEY,
      path: "extra",
      line: 5,
      column: 3,
    });
  });

  it("refuses duplicate keys in JSON input", () => {
    expect(parseError('{"version": 1, "version": 1}').code).toBe(codes.BTL_MANIFEST_DUPLICATE_KEY);
  });

  it("refuses text over the size cap before parsing it", () => {
    const text = `${manifest()}# ${"x".repeat(MAX_MANIFEST_BYTES)}\n`;
    expect(parseError(text).code).toBe(codes.BTL_MANIFEST_TOO_LARGE);
  });

  it("refuses an alias bomb", () => {
    const lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 8; i++)
      lines.push(
        `a${i}: &a${i} [${Array(10)
          .fill(`*a${i - 1}`)
          .join(", ")}]`,
      );
    const error = parseError(`${manifest()}${lines.join("\n")}\n`);
    expect(error.code).toBe(codes.BTL_MANIFEST_PARSE);
  });

  it("never echoes a long string from a mistyped field", () => {
    const secret = "sk-ant-api03-0123456789abcdefghijklmnopqrstuvwxyz";
    const error = parseError(manifest(`git_gate:\n  repos: {}\n  scan: { scanner: ${secret} }\n`));
    expect(error.message).not.toContain(secret);
    const json = parseError(
      route(
        `{ path: /a/, upstream: 'https://x:${secret}@a.example', auth: { scheme: Bearer }, token_ref: T }`,
      ),
    );
    expect(json.message).not.toContain(secret);
    expect(JSON.stringify(json)).not.toContain(secret);
  });
});

describe("no push credential the agent can reach", () => {
  const gate = (repos: string) => `git_gate:\n  repos:\n${repos}`;
  const apps =
    "github_apps:\n  acme: { app_id: 1, private_key: /k }\n  other: { app_id: 2, private_key: /k }\n";
  const appRoute = (repository: string, permissions = "", app = "other") =>
    `cred_proxy:\n  routes:\n    - { path: /gh/, upstream: 'https://api.github.com', auth: { scheme: Bearer }, github_app: { app: ${app}, repository: ${repository}${permissions} } }\n`;
  const docs =
    "    docs:\n      url: https://github.com/acme/docs.git\n      key: { provider: github-app, app: acme }\n";
  const conflicts = (text: string) =>
    parseError(text).issues.filter((i) => i.code === codes.BTL_MANIFEST_CONFLICT);

  it("refuses a gate push token that a cred_proxy token short form also proxies, naming both places", () => {
    const error = parseError(
      manifest(
        `${gate("    api:\n      url: https://github.com/acme/api.git\n      key: { provider: token, token_ref: GH_TOKEN }\n")}cred_proxy:\n  tokens: [{ kind: github, token_ref: GH_TOKEN }]\n`,
      ),
    );
    expect(error.code).toBe(codes.BTL_MANIFEST_CONFLICT);
    expect(error.issues).toHaveLength(1);
    expect(error.issues[0]?.path).toBe("git_gate.repos.api.key.token_ref");
    expect(error.issues[0]?.message).toContain("git_gate.repos.api.key.token_ref");
    expect(error.issues[0]?.message).toContain("cred_proxy.tokens[0].token_ref");
  });

  it("refuses a gate push token or Gitea admin token that an explicit route also proxies", () => {
    const issues = conflicts(
      manifest(
        `${gate(`    api:\n      url: https://h.example/a/api.git\n      key: { provider: token, token_ref: PUSH }\n    infra:\n      url: git@g.example:a/i.git\n      host_key: ${GITHUB_HOST_KEY}\n      key: { provider: gitea, api: 'https://g.example', token_ref: ADMIN }\n`)}cred_proxy:\n  routes:\n    - { path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, token_ref: PUSH }\n    - { path: /b/, upstream: 'https://b.example', auth: { scheme: token }, token_ref: ADMIN }\n`,
      ),
    );
    expect(issues.map((i) => i.path)).toEqual([
      "git_gate.repos.api.key.token_ref",
      "git_gate.repos.infra.key.token_ref",
    ]);
    expect(issues[0]?.message).toContain("cred_proxy.routes[0].token_ref");
    expect(issues[1]?.message).toContain("cred_proxy.routes[1].token_ref");
    expect(issues[1]?.message).toContain("git_gate.repos.infra.key.token_ref");
  });

  it.each([
    [
      "contents: write, from another app",
      "ACME/Docs",
      ", permissions: { contents: write }",
      "other",
    ],
    [
      "contents: write, from the gate's own app",
      "acme/docs",
      ", permissions: { contents: write, issues: read }",
      "acme",
    ],
  ])(
    "refuses a GitHub App route with %s on a repository the gate serves",
    (_, repository, permissions, app) => {
      const issues = conflicts(
        manifest(`${gate(docs)}${appRoute(repository, permissions, app)}${apps}`),
      );
      expect(issues.map((i) => i.path)).toEqual([
        "cred_proxy.routes[0].github_app.permissions.contents",
      ]);
      expect(issues[0]?.message).toContain("git_gate.repos.docs.url");
    },
  );

  it("assumes write when a GitHub App route names no permissions, and knows SSH GitHub URLs", () => {
    const ssh = `    api:\n      url: git@github.com:acme/api.git\n      host_key: ${GITHUB_HOST_KEY}\n      key: { provider: static, identity: /k }\n    web:\n      url: ssh://git@github.com/acme/web\n      host_key: ${GITHUB_HOST_KEY}\n      key: { provider: static, identity: /k }\n`;
    for (const repository of ["acme/api", "Acme/Web"]) {
      const issues = conflicts(manifest(`${gate(ssh)}${appRoute(repository)}${apps}`));
      expect(issues.map((i) => i.path)).toEqual(["cred_proxy.routes[0].github_app"]);
    }
  });

  it.each([
    ["contents: read", "acme/docs", ", permissions: { contents: read }"],
    ["no contents permission", "acme/docs", ", permissions: { pull_requests: write }"],
    ["another repository", "acme/docs-site", ""],
  ])("accepts a GitHub App route with %s", (_, repository, permissions) => {
    expect(
      parse(manifest(`${gate(docs)}${appRoute(repository, permissions)}${apps}`)).version,
    ).toBe(1);
  });

  it.each([
    ["the https origin of a gated repository", docs, "https://github.com/"],
    [
      "the web origin of a host the gate reaches over SSH",
      `    api:\n      url: ssh://git@GitHub.com:22/acme/api.git\n      host_key: ${GITHUB_HOST_KEY}\n      key: { provider: static, identity: /k }\n`,
      "https://github.com",
    ],
    [
      "the Gitea instance that provisions a gated repository's deploy key",
      `    infra:\n      url: ssh://git@g.example:2222/a/i.git\n      host_key: ${GITHUB_HOST_KEY}\n      key: { provider: gitea, api: 'https://g.example:3000', token_ref: ADMIN }\n`,
      "https://g.example:3000/gitea",
    ],
  ])("refuses git_push on a route to %s", (_, repos, upstream) => {
    const issues = conflicts(
      manifest(
        `${gate(repos)}cred_proxy:\n  routes:\n    - { path: /git/, upstream: '${upstream}', auth: { scheme: Basic, username: x }, token_ref: T, git_push: true }\n${apps}`,
      ),
    );
    expect(issues.map((i) => i.path)).toEqual(["cred_proxy.routes[0].git_push"]);
    expect(issues[0]?.message).toMatch(/git_gate\.repos\.\w+\.url/);
  });

  it("accepts git_push to an origin the gate does not serve, and a gated origin without it", () => {
    const text = manifest(
      `${gate(docs)}cred_proxy:\n  routes:\n    - { path: /git/, upstream: 'https://gitlab.example', auth: { scheme: Basic, username: x }, token_ref: T, git_push: true }\n    - { path: /gh-git/, upstream: 'https://github.com', auth: { scheme: Basic, username: x }, token_ref: T }\n${apps}`,
    );
    expect(parse(text).cred_proxy.routes[0]?.git_push).toBe(true);
  });
});

describe("git upstream URLs", () => {
  it.each([
    [
      "ssh://git@h.example:2222/a/b.git",
      { transport: "ssh", user: "git", host: "h.example", port: 2222, path: "/a/b.git" },
    ],
    [
      "git@github.com:acme/api.git",
      { transport: "ssh", user: "git", host: "github.com", port: undefined, path: "acme/api.git" },
    ],
    [
      "https://github.com/acme/d.git",
      {
        transport: "https",
        user: undefined,
        host: "github.com",
        port: undefined,
        path: "/acme/d.git",
      },
    ],
    [
      "http://127.0.0.1:9/r.git",
      { transport: "http", user: undefined, host: "127.0.0.1", port: 9, path: "/r.git" },
    ],
  ])("parses %s", (url, expected) => {
    expect(parseGitUrl(url)).toEqual(expected);
  });

  it.each([
    "file:///etc/passwd",
    "ssh://-oProxyCommand=x/a.git",
    "git@-oProxyCommand=x:a.git",
    "ssh://git@h.example/a/../b.git",
    "https://h.example/a%2f..%2fb.git",
    "https://h.example/a b.git",
    "git@h.example:",
    "h.example:a.git",
  ])("refuses %s", (url) => {
    expect(typeof parseGitUrl(url)).toBe("string");
  });

  it("knows loopback hosts", () => {
    expect(["127.0.0.1", "127.5.0.1", "::1", "[::1]", "localhost"].every(isLoopbackHost)).toBe(
      true,
    );
    expect(
      ["10.0.0.1", "128.0.0.1", "localhost.evil.example", "0.0.0.0"].some(isLoopbackHost),
    ).toBe(false);
  });
});

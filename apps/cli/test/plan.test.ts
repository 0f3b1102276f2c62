import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describeAuth, formatPlan, hostKeyFingerprint, planBottle } from "@bottle/cli";
import { parseManifest } from "@bottle/manifest";
import {
  GITHUB_APP_ROUTE_YAML,
  manifestYaml,
  RESTRICTED_ROUTES_YAML,
  runProcess,
  testdir,
} from "@bottle/test-utils";
import { describe, expect, it } from "vitest";

const GITHUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

describe("hostKeyFingerprint", () => {
  it("matches the fingerprint GitHub publishes for its ed25519 host key", () => {
    expect(hostKeyFingerprint(GITHUB)).toBe(
      "ssh-ed25519 SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU",
    );
  });

  it("matches what ssh-keygen -lf prints", { tags: ["slow"] }, async () => {
    const dir = await testdir();
    await writeFile(join(dir, "key.pub"), `${GITHUB} github.com\n`);
    const result = await runProcess("ssh-keygen", [
      "-l",
      "-E",
      "sha256",
      "-f",
      join(dir, "key.pub"),
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(hostKeyFingerprint(GITHUB).split(" ")[1]);
  });
});

describe("describeAuth", () => {
  it.each([
    [{ header: "x-api-key" }, "header x-api-key"],
    [{ scheme: "Bearer" as const }, "Bearer <token>"],
    [{ scheme: "Basic" as const, username: "x-access-token" }, "Basic x-access-token:<token>"],
  ])("describes %o without a secret", (auth, text) => {
    expect(describeAuth(auth)).toBe(text);
  });
});

describe("planBottle", () => {
  const m = parseManifest(
    "version: 1\nname: p\nagent: { command: [a, b], env: { LANG: C } }\ngit_gate:\n  repos:\n    d: { url: 'https://h.example/d.git', key: { provider: token, token_ref: GH } }\n    e: { url: 'https://h.example/e.git', key: { provider: token, token_ref: GH } }\ncred_proxy:\n  tokens: [{ kind: github, token_ref: GH_API }]\n",
  );

  it("lists each host variable once with every use and its state", () => {
    const plan = planBottle(m, { GH: "value", GH_API: "" });
    expect(plan.host_env).toEqual([
      {
        name: "GH",
        state: "set",
        used_by: ["push and fetch token for repo d", "push and fetch token for repo e"],
      },
      {
        name: "GH_API",
        state: "empty",
        used_by: ["proxy BOTTLE_PROXY_TOKEN_0 (/gh-api/, /gh-git/)"],
      },
    ]);
    expect(JSON.stringify(plan)).not.toContain("value");
  });

  it("does not read inherited properties of the environment", () => {
    const env = Object.create({ GH: "x" }) as Record<string, string>;
    expect(planBottle(m, env).host_env[0]?.state).toBe("unset");
  });

  it("describes the agent and the repositories", () => {
    const plan = planBottle(m, {});
    expect(plan.agent).toEqual({
      command: ["a", "b"],
      workdir: "/workspace",
      image: null,
      env: ["LANG"],
    });
    expect(plan.repos[0]).toMatchObject({
      served_as: "p/d.git",
      transport: "https",
      host: "h.example",
      host_key: null,
    });
  });
});

describe("planBottle with a GitHub App route", () => {
  const m = parseManifest(manifestYaml(GITHUB_APP_ROUTE_YAML, "p"), { checkFiles: false });

  it("shows the app and repository where a token route shows its slot, and reads no host variable for it", () => {
    const plan = planBottle(m, {});
    expect(plan.routes[1]).toEqual({
      path: "/gh/",
      upstream: "https://api.github.com",
      auth: "Bearer <token>",
      slot: "github-app acme acme/api",
      github_app: { app: "acme", repository: "acme/api", permissions: { contents: "read" } },
      roles: [],
    });
    expect(plan.routes[0]).not.toHaveProperty("github_app");
    expect(plan.host_env.map((e) => e.name)).toEqual(["NPM_TOKEN"]);
    expect(formatPlan(plan, "bottle.yaml")).toMatch(
      /\/gh\/\s+→ https:\/\/api\.github\.com\s+Bearer <token>\s+github-app acme acme\/api/,
    );
  });
});

describe("planBottle with restricted routes", () => {
  const m = parseManifest(manifestYaml(`cred_proxy:\n  routes:\n${RESTRICTED_ROUTES_YAML}`, "p"), {
    checkFiles: false,
  });

  it("shows each route's allow rules and whether git pushes pass", () => {
    const plan = planBottle(m, {});
    expect(plan.routes.map((r) => [r.path, r.allow, r.git_push])).toEqual([
      ["/ro/", [{ methods: ["GET", "HEAD"], paths: ["/**"] }], undefined],
      [
        "/gh/",
        [
          { methods: ["GET", "HEAD"], paths: ["/repos/acme/*/pulls/**"] },
          { methods: ["POST"], paths: ["/graphql"] },
        ],
        undefined,
      ],
      ["/git/", undefined, true],
    ]);
    const text = formatPlan(plan, "bottle.yaml");
    expect(text).toMatch(/\/ro\/ .*allow GET,HEAD \/\*\*$/m);
    expect(text).toMatch(
      /\/gh\/ .*allow GET,HEAD \/repos\/acme\/\*\/pulls\/\*\*; allow POST \/graphql$/m,
    );
    expect(text).toMatch(/\/git\/ .*git push$/m);
  });
});

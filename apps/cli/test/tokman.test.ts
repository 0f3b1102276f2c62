import { createHash } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseManifest } from "@bottle/manifest";
import { expectNoCanary, makeCanary, testdir } from "@bottle/test-utils";
import { parseConfig } from "@bottle/tokman";
import { newCallerKey } from "@bottle/tokman/client";
import { describe, expect, it } from "vitest";
import { formatPlan } from "../src/format.ts";
import { planBottle, prepareSidecars } from "../src/plan.ts";
import { planTokman, tokmanConfig } from "../src/tokman.ts";

const PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n";

function manifest(extra: { routes?: string; apps?: string; repos?: string; acme?: string } = {}) {
  return parseManifest(
    [
      "version: 1",
      "name: acme",
      "agent: { command: [agent] }",
      "git_gate:",
      "  repos:",
      "    api: { url: 'https://github.com/acme/api.git', key: { provider: github-app, app: acme } }",
      "    docs: { url: 'https://github.com/acme/docs.git', key: { provider: github-app, app: acme } }",
      extra.repos ?? "",
      "cred_proxy:",
      "  routes:",
      "    - { path: /gh/, upstream: 'https://api.github.com', auth: { scheme: Bearer }, github_app: { app: acme, repository: acme/api, permissions: { issues: write, contents: read } } }",
      "    - { path: /gh2/, upstream: 'https://api.github.com', auth: { scheme: Bearer }, github_app: { app: acme, repository: acme/site, permissions: { contents: write } } }",
      extra.routes ?? "",
      "github_apps:",
      `  acme: ${extra.acme ?? "{ app_id: 42, private_key: /keys/acme.pem }"}`,
      extra.apps ?? "",
    ]
      .filter((line) => line !== "")
      .join("\n"),
    { checkFiles: false },
  );
}

const plansOf = (m: ReturnType<typeof manifest>) => prepareSidecars(m, "/srv/stage");

describe("planTokman", () => {
  it("gives each sidecar one caller: its repositories and the permissions the manifest names", () => {
    const plan = planTokman(plansOf(manifest()), {});
    expect(plan).toEqual({
      source: "bottle",
      callers: [
        {
          name: "gate",
          app: "acme",
          repositories: ["acme/api", "acme/docs"],
          permissions: { contents: "write", metadata: "read" },
        },
        {
          name: "proxy",
          app: "acme",
          repositories: ["acme/api", "acme/site"],
          // The highest level any route asks for each permission.
          permissions: { issues: "write", contents: "write" },
        },
      ],
    });
  });

  it("uses the operator's tokman when both of its variables are set, and refuses only one", () => {
    const plans = plansOf(manifest());
    expect(
      planTokman(plans, { BOTTLE_TOKMAN_URL: "https://t.example", BOTTLE_TOKMAN_KEY: "k" }),
    ).toEqual({
      source: "operator",
    });
    for (const env of [{ BOTTLE_TOKMAN_URL: "https://t.example" }, { BOTTLE_TOKMAN_KEY: "k" }]) {
      expect(() => planTokman(plans, env)).toThrow(
        expect.objectContaining({ code: "BTL_CLI_USAGE" }),
      );
    }
  });

  it("is null when nothing uses a GitHub App", () => {
    const m = parseManifest(
      "version: 1\nname: a\nagent: { command: [a] }\ncred_proxy:\n  routes: [{ path: /a/, upstream: 'https://a.example', auth: { scheme: Bearer }, token_ref: K }]\n",
    );
    expect(planTokman(prepareSidecars(m, "/srv/stage"), {})).toBeNull();
  });

  it("refuses a sidecar whose tokens would come from two apps (a caller has one app)", () => {
    const m = manifest({
      routes:
        "    - { path: /other/, upstream: 'https://api.github.com', auth: { scheme: Bearer }, github_app: { app: other, repository: other/x } }",
      apps: "  other: { app_id: 43, private_key: /keys/other.pem }",
    });
    expect(() => planTokman(plansOf(m), {})).toThrow(
      expect.objectContaining({
        code: "BTL_CLI_UNSUPPORTED",
        message: expect.stringMatching(/proxy's GitHub App tokens come from acme and other/),
      }),
    );
  });

  it("gives a route without permissions read access to contents and metadata", () => {
    const m = parseManifest(
      [
        "version: 1",
        "name: a",
        "agent: { command: [a] }",
        "cred_proxy:",
        "  routes:",
        "    - { path: /gh/, upstream: 'https://api.github.com', auth: { scheme: Bearer }, github_app: { app: acme, repository: acme/api } }",
        "github_apps:",
        "  acme: { client_id: Iv1.abcdef, private_key: /k.pem }",
      ].join("\n"),
      { checkFiles: false },
    );
    const plan = planTokman(prepareSidecars(m, "/srv/stage"), {});
    expect(plan).toMatchObject({
      callers: [{ name: "proxy", permissions: { contents: "read", metadata: "read" } }],
    });
  });
});

describe("the bottle's tokman configuration", () => {
  it("is what tokman reads: the manifest's app and each caller's key digest, never a key", async () => {
    const dir = await testdir();
    const pem = join(dir, "acme.pem");
    await writeFile(pem, PEM, { mode: 0o600 });
    const m = manifest({ acme: `{ app_id: 42, private_key: ${pem}, api: 'http://127.0.0.1:9' }` });
    const plan = planTokman(plansOf(m), {});
    if (plan?.source !== "bottle") throw new Error("expected the bottle's own tokman");
    const keys = { gate: newCallerKey(), proxy: newCallerKey() };
    expect(keys.gate).toMatch(/^btk_[A-Za-z0-9_-]{32}$/);
    const text = tokmanConfig(m, plan.callers, keys);
    expectNoCanary(keys.gate, text);
    expectNoCanary(keys.proxy, text);
    const config = parseConfig(text, dir);
    expect(config.apps.get("acme")).toMatchObject({ issuer: "42", api: "http://127.0.0.1:9" });
    const digest = (key: string) => createHash("sha256").update(key).digest("hex");
    expect(config.callers).toEqual([
      {
        name: "gate",
        keySha256: digest(keys.gate),
        app: "acme",
        repositories: ["acme/api", "acme/docs"],
        permissions: { contents: "write", metadata: "read" },
      },
      {
        name: "proxy",
        keySha256: digest(keys.proxy),
        app: "acme",
        repositories: ["acme/api", "acme/site"],
        permissions: { issues: "write", contents: "write" },
      },
    ]);
  });

  it("shows in the plan, with no key and no host variable", () => {
    const key = makeCanary("tokman-key");
    const plan = planBottle(manifest(), {}, plansOf(manifest()));
    expect(plan.tokman?.source).toBe("bottle");
    expect(plan.host_env.map((e) => e.name)).not.toContain("BOTTLE_TOKMAN_KEY");
    const text = formatPlan(plan, "bottle.yaml");
    expect(text).toMatch(/GitHub App tokens: the bottle's own tokman/);
    expect(text).toMatch(/gate +app acme +acme\/api, acme\/docs +contents write, metadata read/);

    const operator = planBottle(
      manifest(),
      { BOTTLE_TOKMAN_URL: "https://t.example", BOTTLE_TOKMAN_KEY: key },
      plansOf(manifest()),
    );
    expect(operator.host_env.filter((e) => e.name.startsWith("BOTTLE_TOKMAN"))).toEqual([
      {
        name: "BOTTLE_TOKMAN_URL",
        state: "set",
        used_by: ["the operator's tokman (GitHub App tokens)"],
      },
      {
        name: "BOTTLE_TOKMAN_KEY",
        state: "set",
        used_by: ["the caller key at the operator's tokman"],
      },
    ]);
    expectNoCanary(key, formatPlan(operator, "bottle.yaml"), JSON.stringify(operator));
  });
});

// The manifest and the proxy check routes with the same policy (@bottle/manifest/policy): what
// the proxy would refuse at start-up, validation refuses; what validation accepts, starts.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type Manifest, parseManifest } from "@bottle/manifest";
import { FORBIDDEN_CREDENTIAL_HEADERS } from "@bottle/manifest/policy";
import { describe, expect, it } from "vitest";
import { prepareCredProxy } from "../src/plan.ts";
import { parseRoutes } from "../src/routes.ts";
import { createCredProxy } from "../src/server.ts";

const EXAMPLES = join(import.meta.dirname, "../../../examples");

function manifestWith(route: string): string {
  return `version: 1\nname: acme\nagent: { command: [agent] }\ncred_proxy:\n  routes:\n    - ${route}\n`;
}

function validates(route: string): boolean {
  try {
    parseManifest(manifestWith(route), { checkFiles: false });
    return true;
  } catch (error) {
    expect(error).toMatchObject({ name: "ManifestError" });
    return false;
  }
}

function proxyAccepts(route: object): boolean {
  try {
    parseRoutes({
      version: 1,
      routes: [{ path: "/a/", token_env: "BOTTLE_PROXY_TOKEN_0", ...route }],
    });
    return true;
  } catch (error) {
    expect(error).toMatchObject({ code: "BTL_PROXY_CONFIG" });
    return false;
  }
}

/** Starts the proxy of a validated manifest on 127.0.0.1:0 (every slot set), then stops it. */
async function startsProxy(manifest: Manifest): Promise<void> {
  const plan = prepareCredProxy(manifest);
  const tokens = Object.fromEntries(plan.slots.map((s) => [s.slot, "token-value-0123456789"]));
  const proxy = createCredProxy({
    routes: parseRoutes(JSON.parse(JSON.stringify(plan.routesFile))),
    tokens,
    ...(plan.tokman ? { tokman: { url: "http://127.0.0.1:9", key: "btk_key" } } : {}),
  });
  await proxy.listen({ host: "127.0.0.1", port: 0 });
  await proxy.close();
}

describe("the manifest and the proxy agree", () => {
  const headers = [
    ...FORBIDDEN_CREDENTIAL_HEADERS,
    ...FORBIDDEN_CREDENTIAL_HEADERS.map((name) => name.toUpperCase()),
    "X-Forwarded-For",
    "x-forwarded-proto",
    "X-Forwarded-Host",
    "bad header",
    "x".repeat(65),
    "x-api-key",
    "X-Api-Key",
    "authorization",
    "private-token",
    "x-goog-api-key",
  ];

  it.each(headers)("on the credential header %j", (header) => {
    const proxy = proxyAccepts({ upstream: "https://a.example", auth: { header } });
    const manifest = validates(
      `{ path: /a/, upstream: 'https://a.example', auth: { header: '${header}' }, token_ref: T }`,
    );
    expect(manifest).toBe(proxy);
  });

  const upstreams = [
    "https://a.example",
    "https://a.example/",
    "https://ghe.example/api/v3",
    "http://127.0.0.1:8080/base",
    "http://[::1]:1",
    "http://a.example",
    "https://bücher.example",
    "https://a.example/.well-known",
    "https://a.example/a//b",
    "https://a.example/a/../b",
    "https://a.example/%2e",
    "https://u:p@a.example",
    "https://a.example/?q=1",
    "https:a.example",
  ];

  it.each(upstreams)("on the upstream %j", (upstream) => {
    const proxy = proxyAccepts({ upstream, auth: { scheme: "Bearer" } });
    const manifest = validates(
      `{ path: /a/, upstream: '${upstream}', auth: { scheme: Bearer }, token_ref: T }`,
    );
    expect(manifest).toBe(proxy);
  });

  it("starts the proxy of every example manifest and of a manifest using every route form", async () => {
    for (const file of ["bottle.yaml", "minimal.yaml"]) {
      const text = await readFile(join(EXAMPLES, file), "utf8");
      await startsProxy(parseManifest(text, { checkFiles: false }));
    }
    // Every route form at once, as a JSON manifest.
    const route = (path: string, upstream: string, auth: object, more: object = {}) => ({
      path,
      upstream,
      auth,
      token_ref: "S",
      ...more,
    });
    const every = JSON.stringify({
      version: 1,
      name: "acme",
      agent: { command: ["agent"] },
      cred_proxy: {
        tokens: [
          { kind: "anthropic", token_ref: "ANTHROPIC_API_KEY", auth: "api-key" },
          { kind: "github", token_ref: "GH_TOKEN" },
          { kind: "gitea", token_ref: "GITEA_TOKEN", url: "https://gitea.example/" },
          { kind: "npm", token_ref: "NPM_TOKEN" },
        ],
        routes: [
          route("/sentry/", "https://sentry.example/api/0/", { header: "X-Sentry-Token" }),
          route(
            "/basic/",
            "http://127.0.0.1:9",
            { scheme: "Basic", username: "u" },
            { git_push: true },
          ),
          route("/ro/", "https://ro.example", { scheme: "token" }, { read_only: true }),
          {
            path: "/app/",
            upstream: "https://api.github.com",
            auth: { scheme: "Bearer" },
            github_app: { app: "acme", repository: "acme/api", permissions: { contents: "read" } },
          },
        ],
      },
      github_apps: { acme: { app_id: 1, private_key: "/k" } },
    });
    await startsProxy(parseManifest(every, { checkFiles: false }));
  });
});

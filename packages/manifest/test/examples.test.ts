import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { expandRoutes, loadManifest, tokenSlots } from "@bottle/manifest";
import { describe, expect, it } from "vitest";
import { homeWithKeys } from "./helpers.ts";

const EXAMPLES = join(import.meta.dirname, "../../../examples");

describe("examples/", async () => {
  const files = (await readdir(EXAMPLES)).filter((f) => /\.(ya?ml|json)$/.test(f));

  it("holds the realistic and the minimal manifest", () => {
    expect(files).toEqual(expect.arrayContaining(["bottle.yaml", "minimal.yaml"]));
  });

  it.each(files)("%s validates", async (file) => {
    const m = await loadManifest(join(EXAMPLES, file), { homedir: await homeWithKeys() });
    expect(m.version).toBe(1);
  });

  it("the realistic one covers Anthropic, GitHub over SSH, Gitea and npm", async () => {
    const m = await loadManifest(join(EXAMPLES, "bottle.yaml"), { homedir: await homeWithKeys() });
    expect(
      Object.values(m.git_gate?.repos ?? {})
        .map((r) => r.key.provider)
        .sort(),
    ).toEqual(["gitea", "github-app", "static"]);
    expect(m.git_gate?.repos.api?.host_key).toMatch(/^ssh-ed25519 /);
    const routes = expandRoutes(m).map((r) => r.path);
    expect(routes).toEqual([
      "/anthropic/",
      "/gh-api/",
      "/gh-git/",
      "/gitea/gitea.acme.example/",
      "/npm/",
      "/sentry/",
    ]);
    expect(tokenSlots(expandRoutes(m)).map((s) => s.token_ref)).toEqual([
      "ANTHROPIC_API_KEY",
      "GITHUB_TOKEN",
      "GITEA_TOKEN",
      "NPM_TOKEN",
      "SENTRY_TOKEN",
    ]);
  });
});

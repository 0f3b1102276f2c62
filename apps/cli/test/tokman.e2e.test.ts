import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expectNoCanary, git } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { getOnSocket, isRunning, setupBottle } from "./bottle-fixture.ts";

/** The variables of a running process (the tests run as the bottle's user). */
function environOf(pid: number): Record<string, string> {
  const entries = readFileSync(`/proc/${pid}/environ`, "utf8")
    .split("\0")
    .filter(Boolean)
    .map((entry) => [entry.slice(0, entry.indexOf("=")), entry.slice(entry.indexOf("=") + 1)]);
  return Object.fromEntries(entries);
}

describe("a bottle's own tokman", { tags: ["slow"] }, () => {
  it("mints the gate's and the proxy's installation tokens with a key per sidecar, and stops with the bottle", async () => {
    const t = await setupBottle({ githubApp: true });
    const up = await t.bottle(t.argsOf("up", "--name", "gh"));
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout + up.stderr).toMatch(/GitHub App tokens: the bottle.s own tokman/);
    expect(up.stderr).toMatch(/✓ tokman: GitHub App acme/);
    // The mirror was fetched at bring-up with a token tokman minted.
    expect(up.stderr).toMatch(/✓ git gate: mirrors: 1 fetched/);
    const app = t.app;
    if (!app) throw new Error("no GitHub App");
    expect(app.fake.tokens().length).toBeGreaterThan(0);

    const ps = JSON.parse((await t.bottle(["ps", "--json"])).stdout) as Array<{
      sidecars: Array<{ name: string; pid: number; state: string }>;
    }>;
    const sidecars = ps[0]?.sidecars ?? [];
    expect(sidecars.map((s) => [s.name, s.state])).toEqual([
      ["tokman", "running"],
      ["gate", "running"],
      ["proxy", "running"],
    ]);
    const pid = (name: string) => sidecars.find((s) => s.name === name)?.pid ?? 0;

    // Each sidecar holds its own key; tokman holds only their digests, and no argv holds one.
    const gateKey = environOf(pid("gate")).BOTTLE_TOKMAN_KEY ?? "";
    const proxyKey = environOf(pid("proxy")).BOTTLE_TOKMAN_KEY ?? "";
    expect(gateKey).toMatch(/^btk_/);
    expect(proxyKey).toMatch(/^btk_/);
    expect(gateKey).not.toBe(proxyKey);
    expect(environOf(pid("tokman")).BOTTLE_TOKMAN_KEY).toBeUndefined();
    const config = readFileSync(join(t.stateOf("gh"), "private", "tokman.json"), "utf8");
    for (const key of [gateKey, proxyKey]) {
      expect(config).toContain(createHash("sha256").update(key).digest("hex"));
    }
    const argv = sidecars.map((s) => readFileSync(`/proc/${s.pid}/cmdline`, "utf8")).join("\n");

    // The proxy's GitHub App route injects a live installation token scoped to acme/api.
    const sockets = join(t.stateOf("gh"), "sockets");
    expect(await getOnSocket(join(sockets, "proxy.sock"), "/gh/repos/acme/api/issues")).toBe(200);
    const injected = t.api.requests.at(-1)?.headers.authorization ?? "";
    expect(injected).toMatch(/^Bearer /);
    const token = injected.slice("Bearer ".length);
    expect(t.liveToken(token)).toBe(true);
    const minted = app.fake.tokens().find((m) => m.token === token);
    expect(minted?.permissions).toEqual({ issues: "write" });

    const logs = await t.bottle(["logs", "gh", "--sidecar", "tokman"]);
    expect(logs.stdout).toMatch(/"msg":"listening"/);

    const down = await t.bottle(["down", "gh"]);
    expect(down.code, down.stderr).toBe(0);
    for (const s of sidecars) expect(isRunning(s.pid)).toBe(false);
    expect(existsSync(t.stateOf("gh"))).toBe(false);
    // Every token the bottle's tokman minted was revoked at GitHub when it stopped.
    expect(app.fake.tokens().length).toBeGreaterThan(1);
    expect(app.fake.tokens().filter((m) => m.revokedAt === null)).toEqual([]);

    const privateKey = readFileSync(app.keyFile, "utf8").split("\n")[1] ?? "";
    for (const secret of [gateKey, proxyKey, token, privateKey]) {
      expectNoCanary(secret, up.stdout, up.stderr, argv, logs.stdout, down.stdout, down.stderr);
    }
  });

  it("pushes through the gate with an installation token the agent never sees", async () => {
    const t = await setupBottle({ githubApp: true });
    const agent = await t.script(
      "agent.sh",
      `set -e
git clone -q "${t.upstreamUrl}" work && cd work
echo 'export const answer = 42;' > answer.js
git add answer.js && git commit -qm "pushed with an app token" && git push -q origin HEAD:main
env; cat ~/.gitconfig`,
    );
    const run = await t.run("--", agent);
    expect(run.code, run.stderr).toBe(0);
    const head = await git(["--git-dir", t.bare, "log", "-1", "--format=%s", "main"], {
      cwd: t.dir,
      env: t.gitEnv.env,
    });
    expect(head.stdout.trim()).toBe("pushed with an app token");
    const tokens = t.app?.fake.tokens().map((m) => m.token) ?? [];
    expect(tokens.length).toBeGreaterThan(0);
    for (const token of tokens) expectNoCanary(token, run.stdout, run.stderr);
    expect(run.stdout).not.toMatch(/BOTTLE_TOKMAN|btk_/);
  });
});

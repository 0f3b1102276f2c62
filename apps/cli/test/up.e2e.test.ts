import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expectNoCanary, runProcess } from "@bottle/test-utils";
import { describe, expect, it } from "vitest";
import { BIN, getOnSocket, isRunning, setupBottle as setup } from "./bottle-fixture.ts";

describe("bottle up, ps, logs, down", { tags: ["slow"] }, () => {
  it("starts the sidecars on 0600 sockets, and down stops them and removes everything", async () => {
    const t = await setup();
    const up = await t.bottle(t.argsOf("up", "--name", "task-1"));
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toContain("bottle task-1 is up");
    expect(up.stderr).toMatch(/✓ gate: listening: pid \d+/);
    expect(up.stderr).toMatch(/✓ proxy: listening: pid \d+/);

    const state = t.stateOf("task-1");
    const sockets = join(state, "sockets");
    expect(readdirSync(sockets).sort()).toEqual(["gate.sock", "proxy.sock"]);
    for (const socket of ["gate.sock", "proxy.sock"]) {
      expect(statSync(join(sockets, socket)).mode & 0o777).toBe(0o600);
    }
    // The proxy injects the route's key; the agent-facing socket is all it takes.
    expect(await getOnSocket(join(sockets, "proxy.sock"), "/api/v1/x")).toBe(200);
    expect(t.api.requests.at(-1)?.headers.authorization).toBe(`Bearer ${t.apiKey}`);

    const ps = await t.bottle(["ps", "--json"]);
    const rows = JSON.parse(ps.stdout) as Array<{
      name: string;
      state: string;
      sidecars: Array<{ name: string; pid: number; state: string }>;
    }>;
    expect(rows.map((r) => [r.name, r.state])).toEqual([["task-1", "running"]]);
    const pids = rows[0]?.sidecars.map((s) => s.pid) ?? [];
    expect(rows[0]?.sidecars.map((s) => [s.name, s.state])).toEqual([
      ["gate", "running"],
      ["proxy", "running"],
    ]);
    // No secret in any sidecar's argv.
    const argv = pids.map((pid) => readFileSync(`/proc/${pid}/cmdline`, "utf8")).join("\n");

    const logs = await t.bottle(["logs", "task-1"]);
    expect(logs.stdout).toMatch(/^gate {2}\| .*"msg":"listening"/m);
    expect(logs.stdout).toMatch(/^proxy \| .*"msg":"listening"/m);
    const record = readFileSync(join(state, "bottle.json"), "utf8");

    const down = await t.bottle(["down", "task-1"]);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toBe("bottle task-1: down\n");
    expect(existsSync(state)).toBe(false);
    for (const pid of pids) expect(isRunning(pid)).toBe(false);
    // The mirror went back to the cache for the next bottle.
    expect(readdirSync(join(t.dir, "cache", "bottle", "mirrors"))).toHaveLength(1);

    for (const canary of [t.upstreamToken, t.apiKey]) {
      expectNoCanary(
        canary,
        up.stdout,
        up.stderr,
        ps.stdout,
        logs.stdout,
        argv,
        record,
        down.stderr,
      );
    }
  });

  it("refuses without a terminal and without --yes, and creates nothing", async () => {
    const t = await setup();
    const up = await t.bottle(["up", t.manifest, "--workspace", t.workspace]);
    expect(up.code).toBe(2);
    expect(up.stderr).toMatch(/^BTL_CLI_NOT_CONFIRMED: no terminal to confirm/m);
    expect(up.stderr).toContain("UPSTREAM_TOKEN"); // the preflight names the variables it reads
    expect(existsSync(join(t.dir, "state", "bottle", "acme"))).toBe(false);
  });

  it("names bottles after the manifest, never twice, and refuses a taken --name", async () => {
    const t = await setup();
    expect((await t.bottle(t.argsOf("up"))).code).toBe(0);
    const second = await t.bottle(t.argsOf("up"));
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain("bottle acme-2 is up");
    const taken = await t.bottle(["up", t.manifest, "--yes", "--name", "acme"]);
    expect(taken.code).toBe(2);
    expect(taken.stderr).toMatch(/^BTL_CLI_NAME_TAKEN: bottle acme is running/m);
    // Two bottles, two gate sockets, two token files: nothing shared but the manifest.
    const tokens = ["acme", "acme-2"].map((n) =>
      readFileSync(join(t.stateOf(n), "private", "gate-tokens.json"), "utf8"),
    );
    expect(tokens[0]).not.toBe(tokens[1]);
    const down = await t.bottle(["down", "--all"]);
    expect(down.code, down.stderr).toBe(0);
    expect(readdirSync(join(t.dir, "state", "bottle"))).toEqual([]);
  });

  it("reports a sidecar that cannot start, with its log, and leaves nothing behind", async () => {
    const t = await setup();
    // A variable the proxy needs is missing: the preflight passes, the bring-up fails.
    const env = { ...t.env, API_KEY: "" };
    const up = await runProcess(
      process.execPath,
      [BIN, "up", t.manifest, "--yes", "--workspace", t.workspace],
      {
        env,
        cwd: t.dir,
        timeoutMs: 60_000,
      },
    );
    expect(up.code).not.toBe(0);
    expect(up.stderr).toMatch(/^BTL_PROXY_TOKEN: .*API_KEY/m);
    const ps = await t.bottle(["ps", "--json"]);
    expect(JSON.parse(ps.stdout)).toEqual([
      expect.objectContaining({ name: "acme", state: "stopped", sidecars: [] }),
    ]);
    expect(readdirSync(t.stateOf("acme")).sort()).toEqual(["bottle.json", "logs"]);
    // A declined preflight for the same name leaves the stopped bottle's logs where they are.
    const earlier = join(t.stateOf("acme"), "logs", "earlier.log");
    writeFileSync(earlier, "kept\n");
    const declined = await t.bottle(["up", t.manifest, "--workspace", t.workspace]);
    expect(declined.stderr).toMatch(/^BTL_CLI_NOT_CONFIRMED/m);
    expect(existsSync(earlier)).toBe(true);
  });

  it("answers bad names and unknown bottles with stable codes", async () => {
    const t = await setup();
    const bad = await t.bottle(["up", t.manifest, "--yes", "--name", "../etc"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^BTL_CLI_USAGE: --name "\.\.\/etc"/m);
    const down = await t.bottle(["down", "nope"]);
    expect(down.code).toBe(2);
    expect(down.stderr).toMatch(/^BTL_CLI_NO_BOTTLE: no bottle nope/m);
    const logs = await t.bottle(["logs", "nope"]);
    expect(logs.stderr).toMatch(/^BTL_CLI_NO_BOTTLE/m);
    // The default workspace (here) holds the state directory, which the agent must not see.
    const wide = await t.bottle(["up", t.manifest, "--yes"]);
    expect(wide.stderr).toMatch(/^BTL_CLI_USAGE: the workspace .* holds bottle's state directory/m);
    const neither = await t.bottle(["down"]);
    expect(neither.stderr).toMatch(/^BTL_CLI_USAGE: name one bottle, or pass --all/m);
  });
});

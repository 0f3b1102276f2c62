import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createBaseEnv, expectNoCanary, runProcess, startRegistry, testdir } from "../src/index.ts";

/** npm with its home, cache and config files in `home`: only the project's .npmrc speaks. */
function npmEnv(home: string): NodeJS.ProcessEnv {
  return createBaseEnv({
    HOME: home,
    npm_config_userconfig: join(home, "user.npmrc"),
    npm_config_globalconfig: join(home, "global.npmrc"),
    npm_config_cache: join(home, "npm-cache"),
    npm_config_update_notifier: "false",
    npm_config_audit: "false",
    npm_config_fund: "false",
  });
}

async function consumer(npmrc: string): Promise<string> {
  return testdir({
    "package.json": JSON.stringify({ name: "consumer", version: "1.0.0", private: true }),
    ".npmrc": npmrc,
  });
}

describe("startRegistry", { tags: ["slow"] }, () => {
  it("serves a published package to npm install with the token and refuses requests without it", async () => {
    const registry = await startRegistry();
    await registry.publish({ name: "bottle-tiny", text: "tiny" });

    // The packument: 401 without the token or with another one, 200 with it.
    expect((await fetch(`${registry.url}/bottle-tiny`)).status).toBe(401);
    const wrong = { authorization: "Bearer not-the-token" };
    expect((await fetch(`${registry.url}/bottle-tiny`, { headers: wrong })).status).toBe(401);
    const right = { authorization: `Bearer ${registry.token}` };
    const packument = await fetch(`${registry.url}/bottle-tiny`, { headers: right });
    expect(packument.status).toBe(200);
    const tarball = (
      (await packument.json()) as { versions: Record<string, { dist: { tarball: string } }> }
    ).versions["1.0.0"]?.dist.tarball;
    expect(tarball).toBe(`${registry.url}/bottle-tiny/-/bottle-tiny-1.0.0.tgz`);
    expect((await fetch(tarball ?? "")).status).toBe(401);
    // Nobody else can sign up: the registry has its one user.
    const signUp = await fetch(`${registry.url}/-/user/org.couchdb.user:intruder`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "intruder", password: "intruder-password" }),
    });
    expect(signUp.status).toBeGreaterThanOrEqual(400);

    const auth = `${registry.url.slice("http:".length)}/:_authToken=${registry.token}\n`;
    const home = await testdir();
    const denied = await consumer(`registry=${registry.url}/\n`);
    const refused = await runProcess("npm", ["install", "bottle-tiny"], {
      cwd: denied,
      env: npmEnv(home),
      timeoutMs: 60_000,
    });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/E401/);

    const allowed = await consumer(`registry=${registry.url}/\n${auth}`);
    const install = await runProcess("npm", ["install", "bottle-tiny"], {
      cwd: allowed,
      env: npmEnv(home),
      timeoutMs: 60_000,
    });
    expect(install.code, install.stderr).toBe(0);
    const used = await runProcess(process.execPath, ["-p", 'require("bottle-tiny")'], {
      cwd: allowed,
      env: createBaseEnv(),
    });
    expect(used.stdout.trim()).toBe("tiny");
    const lock = await readFile(join(allowed, "package-lock.json"), "utf8");
    expectNoCanary(registry.token, install.stdout, install.stderr, refused.stderr, lock);
  });

  it("writes tarball URLs on the public URL it is given", async () => {
    const publicUrl = "http://127.0.0.1:9/npm/";
    const registry = await startRegistry({ publicUrl });
    await registry.publish({ name: "bottle-tiny", version: "2.0.0" });
    const packument = await fetch(`${registry.url}/bottle-tiny`, {
      headers: { authorization: `Bearer ${registry.token}` },
    });
    const body = (await packument.json()) as {
      versions: Record<string, { dist: { tarball: string } }>;
    };
    expect(body.versions["2.0.0"]?.dist.tarball).toBe(
      `${publicUrl}bottle-tiny/-/bottle-tiny-2.0.0.tgz`,
    );
    await registry.close();
    await expect(fetch(`${registry.url}/bottle-tiny`)).rejects.toThrow();
  });
});

import { chmod, chown, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  createGitEnv,
  createWorkRepo,
  expectNoCanary,
  git,
  makeCanary,
  serveGitHubAppFixture,
  startUpstream,
  testdir,
} from "@bottle/test-utils";
import { describe, expect, it, onTestFinished } from "vitest";
import {
  containerLogs,
  createVolume,
  freePort,
  GATE,
  IMAGES,
  inspect,
  PROXY,
  podman,
  skipReason,
  startContainer,
  stopWithSigterm,
  TOKMAN,
  waitHealthy,
} from "./podman.ts";

// The images' user (`node` in the official Node image and in tooling/images.sh's base).
const UID = 1000;
const reason = skipReason();
if (reason !== undefined) it.skip(`image smoke tests: ${reason}`, () => {});

/** A directory the container's user may read (config mounted read-only at /etc/bottle). */
async function configDir(files: Record<string, string>): Promise<string> {
  const dir = await testdir();
  for (const [name, text] of Object.entries(files)) {
    await writeFile(join(dir, name), text, { mode: 0o600 });
    await chown(join(dir, name), UID, UID);
  }
  await chown(dir, UID, UID);
  await chmod(dir, 0o700);
  return dir;
}

/** Every process in the container runs as the image's non-root user. */
async function expectNonRoot(name: string): Promise<void> {
  expect(await inspect(name, "{{.Config.User}}")).toBe("node");
  // podman's own ps (the images have none): the user each process runs as, in the container.
  const top = await podman(["top", name, "user", "args"]);
  const rows = top.stdout.trim().split("\n").slice(1);
  expect(rows.length).toBeGreaterThanOrEqual(2); // tini and the sidecar
  for (const row of rows) expect(row.trim().split(/\s+/)[0], row).toBe("node");
  expect(rows.some((row) => row.includes("/usr/bin/tini"))).toBe(true);
}

/** SIGTERM stops the container, through tini and the sidecar's own drain, in under a second. */
async function expectQuickStop(name: string): Promise<number> {
  const { exitCode, ms } = await stopWithSigterm(name);
  expect(exitCode).toBe(0);
  expect(ms).toBeLessThan(1000);
  return ms;
}

describe.skipIf(reason !== undefined)("the sidecar images", { tags: ["slow"] }, () => {
  it("are present, each a non-root user's image with a health check", async () => {
    for (const image of IMAGES) {
      const found = await podman(["image", "exists", image], { allowFailure: true });
      expect([image, found.code], "run tooling/images.sh first").toEqual([image, 0]);
      expect(await inspect(image, "{{.Config.User}}")).toBe("node");
      expect(await inspect(image, "{{json .Config.Healthcheck.Test}}")).toContain(
        "healthcheck.mjs",
      );
    }
  });

  it("gate: pushes and clones through the image with a gate token, refuses a wrong one, stops on SIGTERM", async () => {
    const volume = await createVolume();
    const state = ["--volume", `${volume}:/var/lib/bottle`];
    // The repository and the token come from the image's own git and bottle-gate-tokens.
    await podman([
      "run",
      "--rm",
      ...state,
      GATE,
      "git",
      "init",
      "--quiet",
      "--bare",
      "-b",
      "main",
      "/var/lib/bottle/repos/acme.git",
    ]);
    const created = await podman([
      "run",
      "--rm",
      ...state,
      GATE,
      "bottle-gate-tokens",
      "create",
      "--token-file",
      "/var/lib/bottle/tokens.json",
      "--project",
      "acme",
      "--task",
      "smoke",
    ]);
    const token = created.stdout.trim();
    expect(token).toMatch(/^bottle_gt_/);

    // The image's defaults: 0.0.0.0:9419 on podman's bridge, published on the host's loopback.
    const name = await startContainer(["--publish", "127.0.0.1::9419", ...state], GATE);
    await waitHealthy(name);
    await expectNonRoot(name);
    const port = (await podman(["port", name, "9419/tcp"])).stdout.trim().split(":").at(-1);
    const url = `http://${token}:x@127.0.0.1:${port}/acme.git`;

    const gitEnv = await createGitEnv();
    const work = await createWorkRepo(gitEnv, { files: { "README.md": "# through the image\n" } });
    await git(["push", "--quiet", url, "main"], { cwd: work, env: gitEnv.env });
    const clone = join(await testdir(), "acme");
    await git(["clone", "--quiet", url, clone], { cwd: work, env: gitEnv.env });
    const head = async (cwd: string) =>
      (await git(["rev-parse", "HEAD"], { cwd, env: gitEnv.env })).stdout.trim();
    expect(await head(clone)).toBe(await head(work));

    const wrong = `http://bottle_gt_${"A".repeat(32)}:x@127.0.0.1:${port}/acme.git`;
    const refused = await git(["ls-remote", wrong], {
      cwd: work,
      env: gitEnv.env,
      allowFailure: true,
    });
    expect(refused.code).not.toBe(0);

    const ms = await expectQuickStop(name);
    expectNoCanary(token, await containerLogs(name), refused.stderr);
    process.stdout.write(`gate image: SIGTERM to exit ${ms} ms\n`);
  });

  it("cred-proxy: proxies a request to an upstream on the host with the route's token, stops on SIGTERM", async () => {
    const upstream = await startUpstream();
    const secret = makeCanary("proxy");
    const routes = {
      version: 1,
      routes: [
        {
          path: "/api/",
          upstream: upstream.url,
          auth: { scheme: "Bearer" },
          token_env: "BOTTLE_PROXY_TOKEN_0",
        },
      ],
    };
    const dir = await configDir({ "routes.json": JSON.stringify(routes) });
    // The host's network, so that the container reaches the upstream on the host's loopback.
    const port = await freePort();
    const name = await startContainer(
      [
        "--network",
        "host",
        "--volume",
        `${dir}:/etc/bottle:ro`,
        // The token travels in podman's environment, never in its argv.
        "--env",
        "BOTTLE_PROXY_TOKEN_0",
        "--env",
        `BOTTLE_HEALTH_URL=http://127.0.0.1:${port}/healthz`,
      ],
      PROXY,
      [
        "bottle-cred-proxy",
        "--routes",
        "/etc/bottle/routes.json",
        "--bind",
        "127.0.0.1",
        "--port",
        String(port),
      ],
      { BOTTLE_PROXY_TOKEN_0: secret },
    );
    await waitHealthy(name);
    await expectNonRoot(name);

    const res = await fetch(`http://127.0.0.1:${port}/api/v1/ping?q=1`, {
      headers: { authorization: "Bearer evil", "x-api-key": "evil" },
    });
    expect([res.status, await res.json()]).toEqual([200, { ok: true }]);
    expect(
      upstream.requests.map((r) => [r.url, r.headers.authorization, r.headers["x-api-key"]]),
    ).toEqual([["/v1/ping?q=1", `Bearer ${secret}`, undefined]]);

    const ms = await expectQuickStop(name);
    expectNoCanary(secret, await containerLogs(name));
    process.stdout.write(`cred-proxy image: SIGTERM to exit ${ms} ms\n`);
  });

  it("tokman: mints a down-scoped token at the GitHub fake on the host, stops on SIGTERM", async () => {
    const dir = await testdir();
    const fixture = await serveGitHubAppFixture({ realTime: true, dir });
    onTestFinished(() => fixture.close());
    for (const file of [fixture.keyFile, fixture.configFile]) await chown(file, UID, UID);
    await chown(dir, UID, UID);
    const port = await freePort();
    const name = await startContainer(
      [
        "--network",
        "host",
        "--volume",
        `${dir}:/etc/bottle:ro`,
        "--env",
        `BOTTLE_HEALTH_URL=http://127.0.0.1:${port}/healthz`,
      ],
      TOKMAN,
      [
        "bottle-tokman",
        "serve",
        "--config",
        "/etc/bottle/tokman.yaml",
        "--bind",
        "127.0.0.1",
        "--port",
        String(port),
      ],
    );
    await waitHealthy(name);
    await expectNonRoot(name);

    const res = await fetch(`http://127.0.0.1:${port}/api/acme/api`, {
      headers: { authorization: `Bearer ${fixture.key}` },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { token: string; expires_at: string };
    const minted = fixture.fake.tokens();
    expect(minted.map((t) => [t.token, t.repositories])).toEqual([
      [body.token, [{ id: 1, name: "api" }]],
    ]);
    expect(Date.parse(body.expires_at)).toBeGreaterThan(Date.now());

    const ms = await expectQuickStop(name);
    expectNoCanary(body.token, await containerLogs(name));
    expectNoCanary(fixture.key, await containerLogs(name));
    process.stdout.write(`tokman image: SIGTERM to exit ${ms} ms\n`);
  });
});

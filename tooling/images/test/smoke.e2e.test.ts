import { chmod, chown, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import {
  commitFiles,
  createGitEnv,
  createWorkRepo,
  expectNoCanary,
  git,
  makeCanary,
  serveGitHubAppFixture,
  startHttpGitUpstream,
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
  requirePodman,
  startContainer,
  stopWithSigterm,
  TOKMAN,
  waitHealthy,
} from "./podman.ts";

// The images' user (`node` in the official Node image and in tooling/images.sh's base).
const UID = 1000;
requirePodman();

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

/**
 * A gate state volume holding the bare repository `acme.git` and a token for project `acme`,
 * both made by the image's own git and bottle-gate-tokens.
 */
async function gateState(): Promise<{ state: string[]; token: string }> {
  const state = ["--volume", `${await createVolume()}:/var/lib/bottle`];
  const run = (...command: string[]) => podman(["run", "--rm", ...state, GATE, ...command]);
  await run("git", "init", "--quiet", "--bare", "-b", "main", "/var/lib/bottle/repos/acme.git");
  const tokens = ["--token-file", "/var/lib/bottle/tokens.json", "--project", "acme"];
  const token = (await run("bottle-gate-tokens", "create", ...tokens, "--task", "smoke")).stdout;
  expect(token.trim()).toMatch(/^bottle_gt_[A-Za-z0-9_-]+$/);
  return { state, token: token.trim() };
}

describe("the sidecar images", { tags: ["slow"] }, () => {
  it("are present, each a non-root user's image with a health check", async () => {
    for (const image of IMAGES) {
      const found = await podman(["image", "exists", image], { allowFailure: true });
      expect([image, found.code], "run tooling/images.sh first").toEqual([image, 0]);
      expect(await inspect(image, "{{.Config.User}}")).toBe("node");
      expect(await inspect(image, "{{json .HealthCheck.Test}}")).toBe(
        '["CMD","node","/app/healthcheck.mjs"]',
      );
    }
  });

  it("gate: pushes and clones through the image with a gate token, refuses a wrong one, stops on SIGTERM", async () => {
    const { state, token } = await gateState();

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

  it("gate: serves on a unix socket in a shared volume, with no network at all", async () => {
    const { state, token } = await gateState();
    const sockets = await createVolume();
    const name = await startContainer(
      [
        "--network",
        "none",
        ...state,
        "--volume",
        `${sockets}:/run/bottle`,
        "--env",
        "BOTTLE_HEALTH_SOCKET=/run/bottle/gate.sock",
      ],
      GATE,
      [
        "bottle-gate",
        "--base-path",
        "/var/lib/bottle/repos",
        "--token-file",
        "/var/lib/bottle/tokens.json",
        "--socket",
        "/run/bottle/gate.sock",
      ],
    );
    await waitHealthy(name);
    // The host side of the volume, as another container mounting it would see the socket.
    const dir = (
      await podman(["volume", "inspect", "--format", "{{.Mountpoint}}", sockets])
    ).stdout.trim();
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      request(
        {
          socketPath: join(dir, "gate.sock"),
          path: "/acme.git/info/refs?service=git-upload-pack",
          headers: { authorization: `Basic ${Buffer.from(`${token}:x`).toString("base64")}` },
        },
        (res) => {
          let body = "";
          res.on("data", (chunk: Buffer) => {
            body += chunk.toString();
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      )
        .on("error", reject)
        .end();
    });
    expect(answer.status).toBe(200);
    expect(answer.body).toContain("# service=git-upload-pack");
    await expectQuickStop(name);
  });

  it("git gate: mirrors an upstream on the host, forwards a clean push, rejects a secret", async () => {
    const gitEnv = await createGitEnv();
    const root = await testdir();
    const upstreamRepo = join(root, "acme", "api.git");
    await git(["init", "--quiet", "--bare", "-b", "main", upstreamRepo], {
      cwd: root,
      env: gitEnv.env,
    });
    const seed = await createWorkRepo(gitEnv, { files: { "README.md": "# api\n" } });
    await git(["push", "--quiet", upstreamRepo, "main"], { cwd: seed, env: gitEnv.env });
    const upstreamToken = makeCanary("upstream");
    const upstream = await startHttpGitUpstream({
      root,
      username: "x-access-token",
      password: upstreamToken,
    });
    const manifest = [
      "version: 1",
      "name: acme",
      "agent: { command: [agent] }",
      "git_gate:",
      "  repos:",
      "    api:",
      `      url: ${upstream.url("acme/api.git")}`,
      "      key: { provider: token, token_ref: UPSTREAM_TOKEN }",
      "  scan: { scanner: builtin }",
      "",
    ].join("\n");
    const config = await configDir({ "bottle.yaml": manifest });
    const { state, token } = await gateState();
    const port = await freePort();
    const name = await startContainer(
      [
        "--network",
        "host",
        ...state,
        "--volume",
        `${config}:/etc/bottle:ro`,
        "--env",
        "UPSTREAM_TOKEN",
        "--env",
        `BOTTLE_HEALTH_URL=http://127.0.0.1:${port}/healthz`,
      ],
      GATE,
      [
        "bottle-git-gate",
        "entrypoint",
        "--manifest",
        "/etc/bottle/bottle.yaml",
        "--stage",
        "/var/lib/bottle/stage",
        "--gate-url",
        `http://127.0.0.1:${port}`,
        "--",
        "--token-file",
        "/var/lib/bottle/tokens.json",
        "--bind",
        "127.0.0.1",
        "--port",
        String(port),
      ],
      { UPSTREAM_TOKEN: upstreamToken },
    );
    await waitHealthy(name, 60_000);
    await expectNonRoot(name);

    const url = `http://${token}:x@127.0.0.1:${port}/acme/api.git`;
    const work = join(await testdir(), "api");
    await git(["clone", "--quiet", url, work], { cwd: root, env: gitEnv.env });
    const upstreamHead = async () =>
      (await git(["rev-parse", "main"], { cwd: upstreamRepo, env: gitEnv.env })).stdout.trim();

    // A clean commit reaches the upstream, pushed by the gate with its own credential.
    const clean = await commitFiles(
      work,
      gitEnv,
      { "src/app.js": "export const x = 1;\n" },
      "clean",
    );
    await git(["push", "--quiet", "origin", "main"], { cwd: work, env: gitEnv.env });
    expect(await upstreamHead()).toBe(clean);

    // A commit with a GitHub-token-shaped secret is refused by the image's built-in scanner.
    const leaked = `ghp_${"R8k2".repeat(9)}`;
    await commitFiles(work, gitEnv, { "config.js": `export const token = "${leaked}";\n` }, "leak");
    const push = await git(["push", "origin", "main"], {
      cwd: work,
      env: gitEnv.env,
      allowFailure: true,
    });
    expect(push.code).not.toBe(0);
    expect(push.stderr).toMatch(/config\.js/);
    expect(await upstreamHead()).toBe(clean);

    await expectQuickStop(name);
    const logs = await containerLogs(name);
    expectNoCanary(upstreamToken, logs, push.stderr);
    expectNoCanary(token, logs);
    expect(logs).not.toContain(leaked);
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
    const body = (await res.json()) as { access_token: string; expires_at: string };
    const minted = fixture.fake.tokens();
    expect(minted.map((t) => [t.token, t.repositories])).toEqual([
      [body.access_token, [{ id: 1, name: "api" }]],
    ]);
    expect(Date.parse(body.expires_at)).toBeGreaterThan(Date.now());

    const ms = await expectQuickStop(name);
    expectNoCanary(body.access_token, await containerLogs(name));
    expectNoCanary(fixture.key, await containerLogs(name));
    process.stdout.write(`tokman image: SIGTERM to exit ${ms} ms\n`);
  });
});
